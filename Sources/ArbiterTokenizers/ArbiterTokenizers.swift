// ArbiterTokenizers: tokenizer.json, one stage per file.
