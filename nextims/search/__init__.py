"""Library search: identify unknown spectra against experimental and predicted libraries."""
