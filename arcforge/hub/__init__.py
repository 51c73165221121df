"""The Hugging Face Hub: publishing a built dataset (``plan``, then ``publish``) and reading datasets back
(``data``). The only package that imports huggingface_hub."""
