"""Studies of the method and batches: reconstructions from one loss, and grids of cells.

- reconstruct.py: one loss alone, from noise (the paper's Figure 1);
- grid.py: a grid's axes and cells: a sweep varies settings (the paper's Figure 3 is style
  layers x alpha/beta), a batch is content images x style images;
- cell.py: one cell's work, wherever it runs; local.py runs cells here or in a process pool,
  cluster.py on a Ray cluster;
- sweep.py: running a grid resumably, the files of its cells; summary.py and sheet.py: what it
  leaves.

Import from the modules: `reconstruct` is both a module here and its function (nst_ort.reconstruct).
"""
