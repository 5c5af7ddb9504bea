"""Video: stylised clips that do not flicker (Ruder, Dosovitskiy & Brox 2016, GCPR).

The folder follows the data: config.py (VideoConfig, its validation), media.py (PyAV: decode,
encode, audio), flow.py (OpenCV's DIS flow, warping, the consistency weights, the warping error),
temporal.py (the temporal term around a backend's objective), frames.py (one frame: the first
from the usual schedule, later ones from the warped previous result), sequence.py (the frames in
order, written as they finish, resumable; the measure), chunks.py (a clip shared by a Ray
cluster), run.py (`stylize_video`, the front end's API). PyAV and OpenCV are imported only when
used: `pip install 'nst-ort[video]'`.
"""
