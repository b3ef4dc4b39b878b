"""Reading a MIDI file with mido alone, for the files pretty_midi refuses.

pretty_midi builds a table with one entry per tick and so refuses a file whose last tick is past
10 million ("it is likely corrupt"), which a full movement at a fine resolution reaches while being
perfectly valid. The model needs quarter notes, not seconds, so the notes are read straight from
the ticks (tick / ticks per beat): no tempo map, no table.
"""

from __future__ import annotations

from pathlib import Path

DRUM_CHANNEL = 9  # General MIDI's percussion channel (10, counted from 1)


def note_events(path: Path) -> tuple[list[tuple[int, float, float]], list[str]]:
    """((pitch, start, end) in quarter notes for every pitched note, notes for the user)."""
    import mido

    midi = mido.MidiFile(str(path), clip=True)
    per_beat = float(midi.ticks_per_beat or 480)
    events, drums = [], 0
    for track in midi.tracks:
        tick, sounding = 0, {}  # (channel, pitch) -> start tick
        for message in track:
            tick += message.time
            if message.type not in ("note_on", "note_off"):
                continue
            if message.channel == DRUM_CHANNEL:
                drums += message.type == "note_on" and message.velocity > 0
                continue
            key = (message.channel, message.note)
            if message.type == "note_on" and message.velocity > 0:
                if key in sounding:  # a repeated note-on ends the one before
                    events.append((message.note, sounding[key] / per_beat, tick / per_beat))
                sounding[key] = tick
            elif key in sounding:
                events.append((message.note, sounding.pop(key) / per_beat, tick / per_beat))
        events += [(note, start / per_beat, tick / per_beat) for (_, note), start in sounding.items()]
    notes = [f"{path.name} was read note by note with mido (pretty_midi refused its length)."]
    if drums:
        notes.append(f"Ignored {drums} drum notes: the model writes pitched notes only.")
    return sorted((e for e in events if e[2] > e[1]), key=lambda e: (e[1], e[0])), notes
