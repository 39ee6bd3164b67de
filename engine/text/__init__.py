"""The text side: the word lexicon (WordNet), prompt reading, the caption bank, the text tokenizer,
the pretrained text encoder and the trained adapter that feeds it to the language model."""
