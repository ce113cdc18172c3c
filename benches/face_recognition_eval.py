"""Python face_recognition (dlib's HOG detector and ResNet descriptor) on the folders
`facereko eval` reads, scored the same way: every pair of pictures within a group, TAR at a 1 %
false-accept rate and the best accuracy over all thresholds. A picture in which no face is found
counts against it: its genuine pairs are rejections. Run by benches/side_by_side.sh.

Usage: face_recognition_eval.py GROUP_TABLE FOLDER...
A folder whose people the table (a Markdown table with `group` and `person` columns) lists is
split by group, named `<folder>/<group>`; any other folder is one group named after itself.
"""

import json
import math
import os
import sys
import time

import face_recognition

PICTURE_ENDINGS = (".jpg", ".jpeg", ".png")


def read_group_table(path):
    """person (lower case) -> group, from the first table with `group` and `person` columns."""
    table, columns = {}, None
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            cells = [cell.strip().lower() for cell in line.strip().strip("|").split("|")]
            if columns is None:
                if "group" in cells and "person" in cells:
                    columns = cells.index("group"), cells.index("person")
                continue
            group, person = (cells[i] if i < len(cells) else "" for i in columns)
            if group and not group.startswith("-"):
                table[person] = group
    return table


def groups_of(folders, table):
    """[(name, [(person, [picture paths])])], as facereko eval groups them."""
    groups = {}
    for folder in folders:
        folder = folder.rstrip("/")
        name = os.path.basename(folder)
        people = sorted(p for p in os.listdir(folder) if os.path.isdir(os.path.join(folder, p)))
        listed = any(person.lower() in table for person in people)
        for person in people:
            group = f"{name}/{table.get(person.lower(), 'ungrouped')}" if listed else name
            pictures = sorted(
                os.path.join(folder, person, f)
                for f in os.listdir(os.path.join(folder, person))
                if f.lower().endswith(PICTURE_ENDINGS)
            )
            groups.setdefault(group, []).append((person, pictures))
    return list(groups.items())


def describe(path):
    """The descriptor of the largest face HOG finds, or None."""
    image = face_recognition.load_image_file(path)
    faces = face_recognition.face_locations(image, model="hog")
    if not faces:
        return None
    largest = max(faces, key=lambda box: (box[2] - box[0]) * (box[1] - box[3]))
    return face_recognition.face_encodings(image, known_face_locations=[largest])[0]


def metrics(genuine, impostor):
    """TAR at FAR 1 % and the best accuracy; higher scores mean more alike."""
    ranked = sorted(impostor, reverse=True)
    allowed = math.floor(0.01 * len(ranked))
    threshold = math.nextafter(ranked[allowed], math.inf) if allowed < len(ranked) else -math.inf
    tar = sum(score >= threshold for score in genuine) / len(genuine)
    labelled = sorted([(s, True) for s in genuine] + [(s, False) for s in impostor], reverse=True)
    best = len(impostor) / len(labelled)
    accepted_genuine = accepted_impostor = 0
    for i, (score, same) in enumerate(labelled):
        accepted_genuine += same
        accepted_impostor += not same
        if i + 1 == len(labelled) or labelled[i + 1][0] < score:
            best = max(best, (accepted_genuine + len(impostor) - accepted_impostor) / len(labelled))
    return {"genuine": len(genuine), "impostor": len(impostor), "tar_at_far_1_percent": tar, "best_accuracy": best}


def main():
    table = read_group_table(sys.argv[1])
    groups = groups_of(sys.argv[2:], table)
    started = time.process_time()
    descriptors = {}
    for _, people in groups:
        for _, pictures in people:
            for picture in pictures:
                descriptors[picture] = describe(picture)
    cpu = time.process_time() - started
    report = {"pictures": len(descriptors), "cpu_ms_per_picture": 1000 * cpu / max(1, len(descriptors))}
    report["no_face"] = sorted(p for p, d in descriptors.items() if d is None)
    report["groups"] = []
    for name, people in groups:
        owned = [(who, picture) for who, (_, pictures) in enumerate(people) for picture in pictures]
        genuine, impostor = [], []
        for i, (owner, first) in enumerate(owned):
            for other, second in owned[i + 1 :]:
                a, b = descriptors[first], descriptors[second]
                # A miss rejects the pair: a failure for a genuine pair, harmless for a stranger.
                score = -math.inf if a is None or b is None else -float(face_recognition.face_distance([a], b)[0])
                (genuine if owner == other else impostor).append(score)
        report["groups"].append({"name": name, **metrics(genuine, impostor)})
    json.dump(report, sys.stdout)
    print()


if __name__ == "__main__":
    main()
