"""Where weights come from and how they load: sources, the precision ladder, preflight, memory recovery, demo models."""
