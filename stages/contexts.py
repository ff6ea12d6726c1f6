"""contexts: one prompt-context file per context arm (none, retrieved, oracle, oracle_distractors).

The stage's body is ragft/pipeline/contexts.py; DVC runs this script (dvc.yaml).
"""

from ragft.pipeline.contexts import main

if __name__ == "__main__":
    main()
