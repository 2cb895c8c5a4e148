"""WebDataset shards: one clip sample (`sample`), the resumable build (`build`), the reader
(`reader`), the training order (`sampling`) and the torch loader (`loader`).
"""
