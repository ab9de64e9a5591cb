"""PP-OCRv4 text detection, direction classification and recognition (RapidOCR 1.4.4 recipe)."""
