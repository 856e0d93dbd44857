"""Statistics of the clinic's messages: rollups kept by the worker, definitions, charts and exports."""
