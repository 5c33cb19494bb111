"""What a listing is and how it is read: text, photo, labelled spans, and the B-I-O scheme over words.

No torch here: the store and the review queue use these types without loading the model stack."""
