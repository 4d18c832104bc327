"""The torch-free core both sides import: errors, layout, the trial record, rules, the backend contract.

It imports neither the rest of `sweeper` nor `trainers`."""
