"""LoRA/QLoRA tuning of the chat model on a chat JSONL dataset -> adapters/<name>/ for the engine.

Modules: config (TrainConfig), data (JSONL checks, tokenisation, split), callbacks (metrics,
progress, cancel), runs (run folder files), output (atomic publish), train (CLI + Trainer),
validate (CLI dataset report), jobs (training in a subprocess for the UI).
"""
