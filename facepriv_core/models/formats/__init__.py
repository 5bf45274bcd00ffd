"""Readers of model file formats into torch (or NumPy) objects, one module per format.

dlib_dat: dlib's serialised .dat networks; onnx_torch: ONNX graphs as torch modules;
tfjs_graph: TF.js graph models (model.json + shards) as torch modules; tfjs_numpy: an
independent float64 NumPy executor of the same graphs, the reference the torch one is checked
against; keras_hdf5: Keras 2 HDF5 functional models (fer's mini-Xception) as torch modules.
Readers know nothing of the zoo or of faces.
"""
