"""Latent-space statistics of a trained generator over a cohort. run_latent.py calls commands.run.

cohort        covariates of a dataset's volumes: files[i].covariates of the manifest, else its decoded labels
embedding     embed: project a dataset into W or W+, resumable; the embedding folder and its reader
geodesic      curve energy in volume space, discrete geodesics and the intrinsic (Frechet) mean (Shao et al. 2018)
regression    latents on covariates: linear least squares and Gaussian kernel regression, cross-validated
atlas         atlas: volume at the mean latent, intrinsic mean, voxel mean of the data
conditional   regress (atlases along a covariate) and trajectory (one subject moved along a covariate)
snapshots     progress: the same seeds through every snapshot of a training run
figures       side-by-side and difference pictures shared by the commands
commands      COMMANDS and run(opts) (importable without TensorFlow)
options       run_latent.py's option table (embed's projector options are generation.projection_options' rows)
"""
