"""The one training engine every trainer runs on: the fit loop (`engine`), the learning-rate
`schedule`, run `checkpoint`s and resume, mixed `precision` and data-parallel
(`distributed`). The classifier (`cxrkit.train`), the lung segmenter and the screening net
are recipes for it; it imports none of them."""
