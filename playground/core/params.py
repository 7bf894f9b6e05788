"""Sampling parameters, each defined once: bounds, defaults and help text drive validation and the UI."""

from pydantic import BaseModel, ConfigDict, Field


class SamplingParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(1.0, ge=0, le=2, description="Randomness: 0 is near-deterministic, 2 is wild.")
    top_p: float = Field(1.0, ge=0, le=1, description="Nucleus sampling: keep the smallest set of tokens whose probability adds up to this.")
    max_tokens: int = Field(512, ge=1, le=32768, description="Most tokens the reply may have.")
    presence_penalty: float = Field(0.0, ge=-2, le=2, description="Positive values push the model towards new topics.")
    frequency_penalty: float = Field(0.0, ge=-2, le=2, description="Positive values discourage repeating the same words.")
    seed: int | None = Field(None, ge=0, description="Same seed and parameters give repeatable samples where the server supports it.")
    stop: list[str] = Field(default_factory=list, max_length=4, description="Up to 4 sequences where the reply stops.")

    def api_kwargs(self) -> dict:
        """The parameters as the OpenAI API takes them; unset optional ones are left out."""
        kwargs = self.model_dump(exclude={"seed", "stop"})
        if self.seed is not None:
            kwargs["seed"] = self.seed
        if self.stop:
            kwargs["stop"] = list(self.stop)
        return kwargs


PARAM_NAMES = tuple(SamplingParams.model_fields)
