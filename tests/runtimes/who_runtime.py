"""A custom MLServer runtime that answers with its own module's WHO (model code: MLServer runs it).

Tests copy it into two model folders with different WHO values, under one module
name, to see whether each model keeps its own code.
"""

from mlserver import MLModel
from mlserver.types import InferenceResponse, ResponseOutput

WHO = "a"


class Who(MLModel):
    def who(self) -> str:
        return WHO

    async def predict(self, payload):  # noqa: ANN001 - MLServer's signature
        return InferenceResponse(model_name=self.name, outputs=[
            ResponseOutput(name="who", datatype="BYTES", shape=[1], data=[WHO])])
