"""One scorer per benchmark: ScanQA, SQA3D, Scan2Cap, ScanRefer, Multi3DRefer."""
