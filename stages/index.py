"""index: a FAISS index from an index_factory string over the chunk vectors, with a manifest.

The stage's body is ragft/pipeline/index.py; DVC runs this script (dvc.yaml).
"""

from ragft.pipeline.index import main

if __name__ == "__main__":
    main()
