"""Training the engine's models: the motion tokenizer (``tokenizer``) and the language model
(``lm``); the command line is ``python -m engine.training tokenizer|lm``."""
