"""Faces: photos in, faces found and cropped, the reference model; nothing learns here."""
