"""Sub-commands of the `mtl-radiomics` command line, one module each."""
