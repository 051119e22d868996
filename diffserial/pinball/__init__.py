"""The pinball machine: counter machines compiled into SDE force fields ("bad diffusion is Turing complete")."""
