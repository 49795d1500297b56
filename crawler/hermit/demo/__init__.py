"""The built-in demo: a generated website full of crawler traps, and a spider for it."""
