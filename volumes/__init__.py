"""Medical volumes and datasets: reading and writing scans, preprocessing, the record format and manifest,
creating, inspecting and splitting datasets, labels, the synthetic demo data. dataset_tool.py validates its
flags and calls dataset_commands.run; every module here raises plain exceptions (ValueError, OSError family).
"""
