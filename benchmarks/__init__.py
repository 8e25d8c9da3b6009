"""casework benchmarks: ``make bench`` runs them and writes benchmarks/results/latest.json."""
