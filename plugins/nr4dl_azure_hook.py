"""AzureSpeechHook: the Azure AI Speech key and region, from an Airflow connection.

Create the connection once (UI: Admin -> Connections, type "Generic"), e.g.

    airflow connections add nr4dl_azure_speech --conn-type generic \\
        --conn-password "$KEY" --conn-extra '{"region": "westeurope"}'

or as an environment variable on every worker:
`AIRFLOW_CONN_NR4DL_AZURE_SPEECH='{"conn_type": "generic", "password": "...", "extra": {"region": "westeurope"}}'`.
The key is the connection's password, so Airflow masks it in task logs.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException


class AzureSpeechHook(BaseHook):
    conn_name_attr = "azure_conn_id"
    default_conn_name = "nr4dl_azure_speech"
    conn_type = "generic"
    hook_name = "nr4dl Azure AI Speech"

    def __init__(self, azure_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.azure_conn_id = azure_conn_id

    def get_credentials(self) -> Any:
        """The engine's AzureCredentials; fails the task with the connection's name when it is missing or bad."""
        from nr4dl_tasks.asr.azure_speech import credentials_from_connection
        from nr4dl_tasks.core.errors import SettingsError

        try:
            conn = self.get_connection(self.azure_conn_id)
        except AirflowNotFoundException:
            raise AirflowFailException(
                f"transcribe.backend is azure but the Airflow connection {self.azure_conn_id!r} does not exist; add "
                f'it with the Speech key as password and {{"region": ...}} as extra (see the README)'
            ) from None
        try:
            return credentials_from_connection(self.azure_conn_id, conn.password, conn.extra_dejson)
        except SettingsError as exc:
            raise AirflowFailException(str(exc)) from None
