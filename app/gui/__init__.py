"""The Qt window. Thin: every computation is a call into app.core, slow ones on a worker."""
