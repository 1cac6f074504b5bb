#!/usr/bin/env python3
"""Calls the DCS task-center simulator through Huawei Cloud's official Python SDK.

Run by tests/python_sdk.rs with the interpreter of the venv that scripts/tools.sh provisions
(huaweicloudsdkcore and huaweicloudsdkdcs, pinned in tests/python/requirements.txt):

    python3 tests/python/sdk_check.py --endpoint http://127.0.0.1:PORT \
        --ak AK --sk SK --project-id PROJECT --job-id JOB [--job-id JOB2 ...] \
        --unknown-job-id NOPE

It calls, with a DcsClient (v2):

  1. ListCenterTask (GET /v2/{project_id}/tasks), signed with the given AK/SK;
  2. ShowJobInfo (GET /v2/{project_id}/jobs/{job_id}) for each --job-id;
  3. ShowJobInfo for --unknown-job-id, which must raise the SDK's ClientRequestException;
  4. ListCenterTask signed with a wrong secret key, which must be refused.

and prints one JSON object on stdout with what the SDK decoded: the list (task count and every
task's fields), the jobs, the two exceptions (status code, error code, message), the types the
SDK's models declare for each field, the SDK's versions and every warning the SDK raised while
decoding (a TypeConversionWarning there means a field could not be converted to its model type).
Each decoded value comes with the name of the Python type it was decoded to.

Exit status: 0 when every call ended as expected (the JSON then says what was decoded), 1 when
one did not (the JSON's "problems" says which), 2 on bad arguments.
"""

import argparse
import json
import sys
import traceback
import warnings
from importlib import metadata

from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions import exceptions as sdk_exceptions
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkdcs.v2 import (
    DcsClient,
    DetailsBody,
    ListCenterTaskRequest,
    ListCenterTaskResponse,
    ListCenterTasksResp,
    ShowJobInfoRequest,
    ShowJobInfoResponse,
)

TASK_FIELDS = (
    "id",
    "name",
    "status",
    "job_id",
    "user_name",
    "user_id",
    "params",
    "error_code",
    "enable_show",
    "created_at",
    "updated_at",
)
JOB_FIELDS = ("job_id", "job_type", "status", "begin_time", "end_time", "fail_reason")


def client(endpoint, ak, sk, project_id):
    config = HttpConfig.get_default_config()
    # Plain http needs no certificate; this only matters if the endpoint is ever https.
    config.ignore_ssl_verification = True
    config.timeout = (5, 15)
    return (
        DcsClient.new_builder()
        .with_http_config(config)
        .with_credentials(BasicCredentials(ak, sk, project_id))
        .with_endpoints([endpoint])
        .build()
    )


def plain(value):
    """A decoded SDK value as JSON: models via to_dict, Decimals as text, the rest as is."""
    if hasattr(value, "to_dict"):
        return plain(value.to_dict())
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def typed(value):
    """The value with the Python type the SDK decoded it to, so the test can check types."""
    return {"value": plain(value), "type": type(value).__name__}


def decoded_task(task):
    fields = {name: typed(getattr(task, name)) for name in TASK_FIELDS}
    fields["details"] = typed(task.details)
    return fields


def service_error(error):
    return {
        "exception": type(error).__name__,
        "status_code": error.status_code,
        "error_code": error.error_code,
        "error_msg": error.error_msg,
        "request_id": error.request_id,
    }


def expect_refusal(call, what, problems):
    """Runs call(), which must raise a ServiceResponseException; returns its summary."""
    try:
        answer = call()
    except sdk_exceptions.ServiceResponseException as error:
        return service_error(error)
    except Exception as error:  # noqa: BLE001 - reported, not hidden
        problems.append(f"{what}: expected a service error, got {type(error).__name__}: {error}")
        return {"exception": type(error).__name__, "message": str(error)}
    problems.append(f"{what}: expected a service error, the SDK decoded an answer: {answer}")
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--ak", required=True)
    parser.add_argument("--sk", required=True)
    parser.add_argument("--project-id", required=True)
    parser.add_argument("--job-id", required=True, action="append")
    parser.add_argument("--unknown-job-id", required=True)
    parser.add_argument("--limit", type=int, default=100)
    args = parser.parse_args()

    problems = []
    summary = {
        "sdk": {
            "huaweicloudsdkcore": metadata.version("huaweicloudsdkcore"),
            "huaweicloudsdkdcs": metadata.version("huaweicloudsdkdcs"),
            "python": sys.version.split()[0],
        },
        "problems": problems,
        "models": {
            model.__name__: model.openapi_types
            for model in (ListCenterTaskResponse, ListCenterTasksResp, DetailsBody, ShowJobInfoResponse)
        },
        "jobs": {},
    }
    dcs = client(args.endpoint, args.ak, args.sk, args.project_id)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")

        try:
            listed = dcs.list_center_task(ListCenterTaskRequest(offset=0, limit=args.limit))
            tasks = listed.tasks or []
            summary["list"] = {
                "status_code": listed.status_code,
                "task_count": typed(listed.task_count),
                "tasks_len": len(tasks),
                "tasks": [decoded_task(task) for task in tasks],
            }
        except Exception as error:  # noqa: BLE001 - reported, not hidden
            problems.append(f"ListCenterTask: {type(error).__name__}: {error}")
            summary["list_traceback"] = traceback.format_exc()

        for job_id in args.job_id:
            try:
                job = dcs.show_job_info(ShowJobInfoRequest(job_id=job_id))
                decoded = {name: typed(getattr(job, name)) for name in JOB_FIELDS}
                decoded["status_code"] = job.status_code
                summary["jobs"][job_id] = decoded
            except Exception as error:  # noqa: BLE001 - reported, not hidden
                problems.append(f"ShowJobInfo({job_id}): {type(error).__name__}: {error}")
                summary.setdefault("job_tracebacks", {})[job_id] = traceback.format_exc()

        summary["unknown_job"] = expect_refusal(
            lambda: dcs.show_job_info(ShowJobInfoRequest(job_id=args.unknown_job_id)),
            f"ShowJobInfo({args.unknown_job_id})",
            problems,
        )

        wrong = client(args.endpoint, args.ak, args.sk + "-wrong", args.project_id)
        summary["wrong_secret_key"] = expect_refusal(
            lambda: wrong.list_center_task(ListCenterTaskRequest(limit=1)),
            "ListCenterTask with a wrong secret key",
            problems,
        )

    summary["warnings"] = [
        {"category": warning.category.__name__, "message": str(warning.message)}
        for warning in caught
    ]
    json.dump(summary, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
