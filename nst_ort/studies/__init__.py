"""Studies of the method: reconstructions from one loss, and sweeps over one or two axes.

- reconstruct.py: one loss alone, from noise (the paper's Figure 1);
- grid.py: a sweep's axes and cells (the paper's Figure 3 is style layers x alpha/beta);
- sweep.py: running the cells here, resumably; summary.py and sheet.py: what a sweep leaves.

Import from the modules: `reconstruct` is both a module here and its function (nst_ort.reconstruct).
"""
