"""moe-suite analysis: read study directories of HDF5 run files (load), summarise them
(tables) and draw the report's figures (figures). The CLI is analysis/report.py."""
