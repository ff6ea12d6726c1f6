"""The generator: a scratch GPT-2 pretrained here, or any causal LM from the hub; LoRA adapters on top."""
