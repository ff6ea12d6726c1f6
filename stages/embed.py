"""embed: chunks and eval questions → L2-normalised float32 vectors from one encoder.

The stage's body is ragft/pipeline/embed.py; DVC runs this script (dvc.yaml).
"""

from ragft.pipeline.embed import main

if __name__ == "__main__":
    main()
