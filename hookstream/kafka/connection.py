"""How hookstream connects to Kafka: the `kafka` section of the config, typed and validated.

`kafka.client` keeps librdkafka's dotted names (`security.protocol`, `sasl.mechanism`, ...),
the vocabulary every Kafka operator knows. The security keys are fields of `KafkaClient` and
checked when the config loads: a key hookstream's clients would not honour is a config error
naming it, never silently dropped, because a client that quietly connects without TLS or SASL
is worse than one that refuses to start. Every other key tunes librdkafka and passes through.

The adapters: `to_librdkafka()` for confluent-kafka (secrets revealed only there),
`ssl_context()` for the asyncio clients; `hookstream.kafka.faust_auth` turns both into Faust's
broker credentials.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from hookstream.errors import ConfigError

Protocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
Mechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
TuningValue = str | int | float | bool


def _scalar(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    try:
        return handler(value)
    except ValidationError:
        raise ValueError("must be a string, a number or true/false") from None


TuningSetting = Annotated[TuningValue, WrapValidator(_scalar)]

SECURITY_PREFIXES = ("security.", "sasl.", "ssl.", "enable.ssl.")
# librdkafka's log lines (connection failures, broker state) become stdlib records here.
LIBRDKAFKA_LOGGER = logging.getLogger("hookstream.kafka.librdkafka")


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


class KafkaClient(BaseModel):
    """`kafka.client`: the security settings, typed, plus librdkafka tuning keys as given."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)
    __pydantic_extra__: dict[str, TuningSetting] = Field(init=False)

    security_protocol: Annotated[Protocol, BeforeValidator(_upper)] = Field(
        default="PLAINTEXT", alias="security.protocol"
    )
    sasl_mechanism: Annotated[Mechanism | None, BeforeValidator(_upper)] = Field(
        default=None, alias="sasl.mechanism"
    )
    # librdkafka's older, plural spelling of the same setting
    sasl_mechanisms: Annotated[Mechanism | None, BeforeValidator(_upper)] = Field(
        default=None, alias="sasl.mechanisms"
    )
    sasl_username: str | None = Field(default=None, alias="sasl.username")
    sasl_password: SecretStr | None = Field(default=None, alias="sasl.password")
    ssl_ca_location: str | None = Field(default=None, alias="ssl.ca.location")
    ssl_certificate_location: str | None = Field(default=None, alias="ssl.certificate.location")
    ssl_key_location: str | None = Field(default=None, alias="ssl.key.location")
    ssl_key_password: SecretStr | None = Field(default=None, alias="ssl.key.password")
    ssl_endpoint_identification_algorithm: Annotated[
        Literal["https", "none"], BeforeValidator(lambda v: v.lower() if isinstance(v, str) else v)
    ] = Field(default="https", alias="ssl.endpoint.identification.algorithm")
    enable_ssl_certificate_verification: bool = Field(
        default=True, alias="enable.ssl.certificate.verification"
    )

    @model_validator(mode="before")
    @classmethod
    def _known_security_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        known = {field.alias for field in cls.model_fields.values()}
        unknown = [
            key
            for key in data
            if isinstance(key, str) and key.startswith(SECURITY_PREFIXES) and key not in known
        ]
        if unknown:
            raise _key_errors(
                [(key, "is not supported by hookstream's Kafka clients") for key in unknown]
            )
        return data

    @field_validator("sasl_mechanisms")
    @classmethod
    def _same_mechanism(cls, value: str | None, info: ValidationInfo) -> str | None:
        single = info.data.get("sasl_mechanism")
        if value is not None and single is not None and value != single:
            raise ValueError(f"disagrees with sasl.mechanism ({single})")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> KafkaClient:
        problems = [
            (key, f"is set but security.protocol is {self.security_protocol}, not {needs}")
            for key, needs in self._misplaced()
        ]
        if self.uses_sasl:
            if self.mechanism is None:
                problems.append(("sasl.mechanism", f"is required with {self.security_protocol}"))
            elif not self.sasl_username:
                problems.append(("sasl.username", f"is required with {self.mechanism}"))
            elif self.sasl_password is None:
                problems.append(("sasl.password", f"is required with {self.mechanism}"))
        if self.ssl_key_location and not self.ssl_certificate_location:
            problems.append(("ssl.certificate.location", "is required with ssl.key.location"))
        if self.ssl_certificate_location and not self.ssl_key_location:
            problems.append(("ssl.key.location", "is required with ssl.certificate.location"))
        if self.ssl_key_password is not None and not self.ssl_key_location:
            problems.append(("ssl.key.password", "is set but ssl.key.location is not"))
        if problems:
            raise _key_errors(problems)
        return self

    def _misplaced(self) -> list[tuple[str, str]]:
        """SASL keys without a SASL protocol, TLS keys without a TLS one."""
        found = []
        for key in self._given_keys():
            if key.startswith("sasl.") and not self.uses_sasl:
                found.append((key, "SASL_*"))
            elif "ssl." in key and not self.uses_tls:
                found.append((key, "SSL/SASL_SSL"))
        return found

    def _given_keys(self) -> list[str]:
        aliases = {name: field.alias or name for name, field in type(self).model_fields.items()}
        return [aliases[name] for name in type(self).model_fields if name in self.model_fields_set]

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @property
    def mechanism(self) -> Mechanism | None:
        return self.sasl_mechanism or self.sasl_mechanisms

    @property
    def verifies_hostname(self) -> bool:
        # As in librdkafka, no certificate verification means no host name check either.
        return (
            self.ssl_endpoint_identification_algorithm == "https"
            and self.enable_ssl_certificate_verification
        )

    @property
    def tuning(self) -> dict[str, TuningValue]:
        """The keys that are not security settings, for librdkafka as given."""
        return dict(self.__pydantic_extra__ or {})

    def to_librdkafka(self) -> dict[str, TuningValue]:
        """The keys as given, secrets revealed: for confluent-kafka's config only."""
        config: dict[str, TuningValue] = {}
        for name in type(self).model_fields:
            if name not in self.model_fields_set:
                continue
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            if value is not None:
                config[type(self).model_fields[name].alias or name] = value
        return {**config, **self.tuning}

    def ssl_context(self) -> ssl.SSLContext:
        """A client TLS context: the CA to trust (system default if none), the client
        certificate, and librdkafka's verification switches."""
        ca = self.ssl_ca_location
        try:
            if ca is not None and Path(ca).is_dir():
                context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, capath=ca)
            else:
                context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(_key("ssl.ca.location"), f"cannot be loaded: {exc}") from None
        context.check_hostname = self.verifies_hostname
        if not self.enable_ssl_certificate_verification:
            context.verify_mode = ssl.CERT_NONE
        if self.ssl_certificate_location and self.ssl_key_location:
            password = self.ssl_key_password
            try:
                context.load_cert_chain(
                    self.ssl_certificate_location,
                    self.ssl_key_location,
                    password.get_secret_value() if password is not None else None,
                )
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(
                    _key("ssl.certificate.location"),
                    f"the certificate and key cannot be loaded: {exc}",
                ) from None
        return context


class KafkaConnection(BaseModel):
    """The `kafka` section: where the brokers are and how to talk to them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bootstrap_servers: str = "localhost:9092"
    client: KafkaClient = KafkaClient()
    # client settings read from environment variables (e.g. sasl.password from a
    # Kubernetes Secret): {librdkafka key: VARIABLE}; resolved into `client` at load.
    client_env: dict[str, str] = Field(default_factory=dict)

    def to_librdkafka(self, **extra: Any) -> dict[str, Any]:
        """A confluent-kafka client's config: brokers, `kafka.client`, then `extra`; its
        log lines go to the stdlib logger (and so into the structured logs)."""
        return {
            "bootstrap.servers": self.bootstrap_servers,
            "logger": LIBRDKAFKA_LOGGER,
            **self.client.to_librdkafka(),
            **extra,
        }


def _key(name: str) -> str:
    return f"kafka.client.{name}"


def _key_errors(problems: list[tuple[str, str]]) -> ValidationError:
    """One validation error per key, located at the key itself (`kafka.client.<key>`)."""
    return ValidationError.from_exception_data(
        "KafkaClient",
        [
            InitErrorDetails(
                type=PydanticCustomError("kafka_client", problem),
                loc=(key,),
                input=None,
            )
            for key, problem in problems
        ],
    )
