"""Answering through a served model: the `openai` inference engine (any OpenAI-compatible server: vLLM,
`transformers serve`, TGI, Ollama, llama.cpp, a hosted API) and `ragft serve`, a local server for the
pipeline's own models."""
