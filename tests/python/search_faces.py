"""Calls FaceReko's Rekognition-compatible API with boto3, as any AWS program would.

Usage: search_faces.py ENDPOINT_URL COLLECTION PICTURE
Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY. Prints the answer of
search_faces_by_image as one JSON line; exits 2 with the error code on a service error.
"""

import json
import sys

import boto3
import botocore.exceptions


def main() -> int:
    endpoint_url, collection, picture = sys.argv[1:4]
    client = boto3.client("rekognition", region_name="us-east-1", endpoint_url=endpoint_url)
    with open(picture, "rb") as f:
        image = f.read()
    try:
        answer = client.search_faces_by_image(
            CollectionId=collection, Image={"Bytes": image}, MaxFaces=1, FaceMatchThreshold=85
        )
    except botocore.exceptions.ClientError as e:
        print(json.dumps({"error": e.response["Error"]["Code"]}))
        return 2
    answer.pop("ResponseMetadata", None)
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
