"""Chat templates render what the model's server renders."""

from supernode.text.chat import TEMPLATES

R1 = TEMPLATES["deepseek-r1"].render


def test_deepseek_r1_turns() -> None:
    """DeepSeek-R1: BOS, joined system prompts, User/Assistant markers, earlier reasoning
    dropped, and `<｜Assistant｜><think>\\n` as the generation prompt."""
    text = R1([{"role": "system", "content": "A"}, {"role": "system", "content": "B"},
               {"role": "user", "content": "hi"},
               {"role": "assistant", "content": "<think>hmm</think>hello"},
               {"role": "user", "content": [{"type": "text", "text": "x"},
                                            {"type": "text", "text": "y"}]}], True)
    assert text == ("<｜begin▁of▁sentence｜>A\n\nB<｜User｜>hi<｜Assistant｜>hello"
                    "<｜end▁of▁sentence｜><｜User｜>x\ny<｜Assistant｜><think>\n")


def test_deepseek_r1_tool_turns() -> None:
    """Tool calls and tool outputs use DeepSeek's markers; after a tool output no generation
    prompt is added (the template closes the outputs instead)."""
    call = {"id": "1", "type": "function",
            "function": {"name": "f", "arguments": '{"a": 1}'}}
    text = R1([{"role": "user", "content": "q"},
               {"role": "assistant", "content": None, "tool_calls": [call]},
               {"role": "tool", "content": "42"}], True)
    assert text == ("<｜begin▁of▁sentence｜><｜User｜>q<｜Assistant｜><｜tool▁calls▁begin｜>"
                    "<｜tool▁call▁begin｜>function<｜tool▁sep｜>f\n```json\n{\"a\": 1}\n```"
                    "<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜>"
                    "<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>42<｜tool▁output▁end｜>"
                    "<｜tool▁outputs▁end｜>")
