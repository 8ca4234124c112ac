"""Using a trained generator (loaded by training.network_io). run_generator.py calls commands.run, run_projector.py
projection_command.run_projection.

seeds              seed -> z, seed noise, shared noise; label vectors
runner             batched, compiled mapping and synthesis of one Generator
sampling           seeds -> volumes, average volumes
style_mixing       ws resolutions, presets, style text -> ws indices, the row x column mix
interpolation      lerp / slerp paths between seeds in Z or W
outputs            NIfTI with the data's affine, PNG slices and grids, strip/GIF
commands           COMMANDS and run(opts) (importable without TensorFlow)
projector          the projection optimisation: schedule, loss terms, W statistics, Projector
projection_targets image files, dataset volumes and generated seeds as targets
projection_outputs one target's folder: volumes, latent, noise, loss curve, comparison, metrics
native_grid        a projection back in its source file's grid and intensity units
projection_command run_projection(opts)
projection_options the projector's option table: run_projector.py's flags, the projector's defaults, LOSSES
generate_options   run_generator.py's option table
restoration/       forward models of a clinical acquisition and what projection through them restores
latent_stats/      latent-space statistics over a cohort (run_latent.py): embed, atlas, regress, trajectory, progress
"""
