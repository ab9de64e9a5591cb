"""PP-OCR text detection, direction classification and recognition, for every generation in
models/ocr/generations.py, each following the RapidOCR release it is read with (recipe.py)."""
