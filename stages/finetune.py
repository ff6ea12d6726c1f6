"""finetune@<model>: one fine-tuned model of the experiment → models/<model>/ (a LoRA adapter).

The stage's body is ragft/pipeline/finetune.py; DVC runs this script (dvc.yaml).
"""

from ragft.pipeline.finetune import main

if __name__ == "__main__":
    main()
