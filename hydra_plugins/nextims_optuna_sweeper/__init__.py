"""NExtIMS's Optuna sweeper for Hydra multirun: a persistent study driven by ask/tell, trials launched in batches."""
