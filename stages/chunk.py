"""chunk: documents → token-budgeted chunks of the embedder's tokenizer, with char offsets.

The stage's body is ragft/pipeline/chunk.py; DVC runs this script (dvc.yaml).
"""

from ragft.pipeline.chunk import main

if __name__ == "__main__":
    main()
