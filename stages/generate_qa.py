"""generate_qa: questions written by a generator from your documents (dataset.qa=generate), filtered.

The stage's body is ragft/pipeline/generate_qa.py; DVC runs this script (dvc.yaml).
"""

from ragft.pipeline.generate_qa import main

if __name__ == "__main__":
    main()
