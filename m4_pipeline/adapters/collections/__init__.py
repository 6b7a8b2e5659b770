"""Collection adapters: one adapter per published collection, a subset table inside it.

A collection (DEMON, Mantis-Instruct) carries many datasets in one layout; its adapter reads any
of them, and a recipe names one source per dataset (``params: {subsets: [...]}``) so that each
gets its own sampling to the published count.
"""
