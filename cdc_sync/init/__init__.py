"""`cdc-sync init`: a first mapping written from the shop's own schema.

Pure parts turn schema facts into mapping text (`facts`, `yamltext`, `generic`, `detect`,
`presets`); the I/O parts reflect the shop into facts and check the result against it
(`reflect`, `build`). Only the CLI prints.
"""
