"""Using a trained generator: the one network loader, sampling, style mixing, interpolation, the projector.
run_generator.py and run_projector.py call into it.
"""
