"""retrieve: eval questions → ranked chunks; recall@k, MRR, nDCG@k against the gold documents.

The stage's body is ragft/pipeline/retrieve.py; DVC runs this script (dvc.yaml).
"""

from ragft.pipeline.retrieve import main

if __name__ == "__main__":
    main()
