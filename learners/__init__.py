"""The learners beside MAML (maml.py, at the root as in the original): each module holds one method and
plugs into main.py's loop through the interface docs/ARCHITECTURE.md describes; config.METHODS maps
--method to 'module:Class'."""
