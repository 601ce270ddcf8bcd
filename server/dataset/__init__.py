"""Datasets (docs/datasets.md): a question's kept exams split into named sets, the split's
report and manifests, and the final day's truth and release built from one set."""
