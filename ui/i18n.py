"""User-facing text in English and Korean.

Static labels go through gr.I18n (the browser's language picks the table); text made on the
server (errors, live panels) goes through `say`, which reads the request's Accept-Language.
"""
from __future__ import annotations

from typing import Any

import gradio as gr
from gradio.i18n import I18nData

from config import PRECISION_PROBLEMS

EN: dict[str, str] = {
    # tabs
    "tab.chat": "Chat", "tab.image": "Image", "tab.voice": "Voice", "tab.models": "Models",
    "tab.system": "System", "tab.tuning": "Tuning",
    # sessions sidebar
    "sessions.title": "### Chats", "sessions.new": "➕ New chat", "sessions.search": "Search chats",
    "sessions.search_ph": "Search titles and messages", "sessions.list": "Your chats",
    "sessions.rename_label": "Title of this chat", "sessions.rename": "Rename",
    "sessions.delete": "🗑 Delete chat", "sessions.delete_yes": "Yes, delete it",
    "sessions.delete_no": "Cancel", "sessions.owner_key": "Your private key (API owner_token)",
    "sessions.owner_info": "Chats in this browser belong to this key. Keep it secret; pass it as owner_token "
                           "to the API to reach these chats.",
    # export / import from the chat list, presets (ui/chat_exchange.py, ui/presets_panel.py)
    "exchange.title": "⇅ Export / import chats", "exchange.scope": "Export",
    "exchange.this": "This chat", "exchange.all": "All my chats", "exchange.format": "Format",
    "exchange.json": "JSON (everything, to import again)", "exchange.markdown": "Markdown (to read)",
    "exchange.export": "⬇ Export", "exchange.file": "Your export (click to download)",
    "exchange.import": "⬆ Import chats (.json)",
    "exchange.note": "Import adds the chats of a JSON export; it never replaces a chat you have.",
    "presets.title": "Presets: saved system prompts with their settings",
    "presets.pick": "Preset", "presets.pick_info": "Picking one sets this chat's system prompt and settings.",
    "presets.name": "Preset name", "presets.name_ph": "e.g. Korean tutor",
    "presets.save": "💾 Save these settings as a preset", "presets.rename": "✎ Rename the preset",
    "presets.delete": "🗑 Delete the preset",
    # chat
    "chat.chatbot": "Conversation", "chat.input_ph": "Message (Enter to send, Shift+Enter for a new line). "
                                                     "Attach an image to ask the image model, or a document "
                                                     "(.txt, .md, .pdf, code) to ask about it.",
    "chat.drawer": "☰ Chats", "chat.stop": "⏹ Stop", "chat.retry": "🔄 Retry", "chat.continue": "⏩ Continue",
    "chat.edit": "✏️ Edit last message",
    "chat.edit_cancel": "✖ Cancel edit", "chat.settings": "Settings for this chat",
    "chat.system_prompt": "System prompt", "chat.system_prompt_ph": "e.g. Answer briefly, in Korean.",
    "chat.temperature": "Temperature (0 = greedy)", "chat.max_new_tokens": "Max new tokens",
    "chat.top_p": "Top-p", "chat.empty_hint": "Start typing below. Your chats stay on this machine.",
    "chat.seed": "Seed", "chat.seed_info": "Empty: a different reply each time. A number: the same reply to the same "
    "message (when the model is not busy with others).",
    "chat.presence_penalty": "Presence penalty", "chat.frequency_penalty": "Frequency penalty",
    "chat.top_k": "Top-k", "chat.top_k_info": "Pick each word among the k likeliest only. 0 turns it off.",
    "chat.repetition_penalty": "Repetition penalty",
    "chat.repetition_penalty_info": "Above 1: less repetition of what the chat already holds. 1 turns it off.",
    "chat.penalty_info": "Above 0: fewer repeated words (presence: once a word is used; frequency: the more it is "
    "used). 0 turns it off.",
    "chat.queue_note": "When many people use the model at once you may see “busy, try again”: wait a moment.",
    # image
    "image.input": "Image (upload, paste or webcam)", "image.question": "Question about the image",
    "image.question_ph": "What is in this picture?", "image.ask": "Ask", "image.stop": "⏹ Stop",
    "image.answer": "Answer", "image.to_chat": "➡ Send to chat",
    # voice
    "voice.input": "Speak or upload audio", "voice.transcribe": "Transcribe",
    "voice.transcript": "Transcript (you can edit it)", "voice.reply": "Reply",
    "voice.answer": "Reply text", "voice.spoken": "Spoken reply", "voice.autoplay": "Play replies automatically",
    "voice.https_note": "🎙 Browsers allow the microphone only on **https://** or **localhost**. On plain "
                        "http:// over a LAN it is refused: use the share link (https), open the app on this "
                        "computer, or upload a recording instead.",
    "voice.language": "Spoken language of the reply",
    # models
    "models.loaded": "### Loaded models", "models.refresh": "↻ Refresh", "models.which": "Model",
    "models.load": "Load", "models.unload": "Unload", "models.precision": "Precision of the chat model",
    "models.precision_save": "Save for the next start", "models.estimate_model": "Model to estimate (hub id or folder)",
    "models.estimate": "Estimate GPU memory", "models.estimate_vision": "Estimate the image model",
    "models.extra_title": "### Models in memory (image and speech load on first use)",
    "models.precision_title": "### Precision", "models.estimate_title": "### GPU memory per precision",
    "models.switch_title": "### Switch the chat model now",
    "models.switch_note": "Replies being written finish first; messages sent meanwhile are told \"switching "
                          "model…\" (the API answers 503 with Retry-After). The old model's memory is freed before "
                          "the new one loads; if the new one fails, the old one serves again.",
    "models.switch_model": "Model: a local folder, a .gguf file, a hub id, or demo",
    "models.switch_precision": "Precision (auto: the ladder)", "models.switch": "Load this model",
    "models.switch_log": "Progress",
    # system
    "system.title": "### System (refreshes every 2 s)", "system.live": "Live updates",
    # Hugging Face Space
    "space.no_storage": "⚠️ **This Space has no persistent storage: chats are lost when it restarts.** "
                        "Turn on persistent storage in the Space settings to keep them.",
    "locked.title": "## 🔒 This Space is not set up yet",
    "locked.intro": "The app stays locked until the Space owner adds (or corrects) these secrets "
                    "(Settings → Variables and secrets → New secret), then restarts the Space:",
    "locked.help": "`APP_USERS`: the logins, `user:password,user2:password2`. `APP_API_KEY`: a long random key "
                   "for the API (clients send `Authorization: Bearer <key>`).",
    # chat: adapters
    "chat.adapter": "Adapter", "chat.adapter_info": "LoRA adapter this chat answers with (made in the Tuning tab).",
    "chat.message": "Message", "chat.history_turns": "Past turns sent to the model",
    "chat.history_turns_info": "How many of your messages (each with its reply) go into the next reply, this one "
                               "included; older ones are left out. Each reply shows how many were sent.",
    "chat.compare_title": "Compare base vs adapter",
    "chat.compare_note": "Runs your last message through the base model and through the chosen adapter, greedy "
                         "(temperature 0) so only the adapter makes a difference. Nothing is saved.",
    "chat.compare_run": "⚖️ Compare base vs adapter", "chat.compare_base": "Base model",
    "chat.compare_adapter": "With the adapter",
    # models: adapters
    "models.adapters_title": "### LoRA adapters", "models.adapters_refresh": "↻ Refresh adapters",
    # tuning
    "tuning.intro": "### Fine-tune with LoRA / QLoRA\nTrain an adapter on your own conversations (JSONL, one "
                    "`{\"messages\": [...]}` per line, ending with the assistant reply). Training runs in a separate "
                    "process: chatting keeps working. When it is done, pick the adapter in Chat → Settings → Adapter.",
    "tuning.demo_note": "Demo model loaded: training uses the demo configs (CPU). On the small offline model "
                        "(SmolLM2-135M-Instruct) the loss falls and the adapter really changes replies; on the tiny "
                        "random model (tests) replies stay noise.",
    "tuning.remote_note": "⚠️ The chat model runs on a remote server: adapters trained here can only be used once the "
                          "model is loaded on this machine.",
    "tuning.public_note": "Training is turned off on a public share without login.",
    "tuning.dataset": "Dataset (JSONL)", "tuning.sample_note": "Nothing uploaded: the sample tuning/data/sample.jsonl "
                                                              "(36 short Korean and English conversations) is used.",
    "tuning.check": "🔎 Check dataset", "tuning.use_sample": "Use the sample",
    "tuning.check_result": "Dataset check", "tuning.method": "Method (QLoRA: 4-bit base, less GPU memory)",
    "tuning.name": "Adapter name", "tuning.name_info": "Letters (Korean too), digits, '.', '_' or '-'.",
    "tuning.steps": "Training steps", "tuning.overwrite": "Replace an adapter (or earlier run) of this name",
    "tuning.start": "▶ Start training", "tuning.cancel": "⏹ Cancel training",
    "tuning.idle": "No training running from this page.", "tuning.plot": "Loss",
    "tuning.axis_step": "step", "tuning.axis_loss": "loss",
    "tuning.log": "Training log",
    "voice.lang_auto": "Detect",    # Voice language radio (issue 12)
}

KO: dict[str, str] = {
    "tab.chat": "채팅", "tab.image": "이미지", "tab.voice": "음성", "tab.models": "모델",
    "tab.system": "시스템", "tab.tuning": "튜닝",
    "sessions.title": "### 대화 목록", "sessions.new": "➕ 새 대화", "sessions.search": "대화 검색",
    "sessions.search_ph": "제목과 메시지에서 찾기", "sessions.list": "내 대화",
    "sessions.rename_label": "이 대화의 제목", "sessions.rename": "이름 바꾸기",
    "sessions.delete": "🗑 대화 삭제", "sessions.delete_yes": "네, 삭제합니다",
    "sessions.delete_no": "취소", "sessions.owner_key": "내 비공개 키 (API owner_token)",
    "sessions.owner_info": "이 브라우저의 대화는 이 키에 속합니다. 비밀로 하세요. API에 owner_token으로 "
                           "넘기면 이 대화에 접근합니다.",
    "exchange.title": "⇅ 대화 내보내기 / 가져오기", "exchange.scope": "내보낼 대화",
    "exchange.this": "이 대화", "exchange.all": "내 대화 전체", "exchange.format": "형식",
    "exchange.json": "JSON (전부, 다시 가져오기용)", "exchange.markdown": "Markdown (읽기용)",
    "exchange.export": "⬇ 내보내기", "exchange.file": "내보낸 파일 (눌러서 내려받기)",
    "exchange.import": "⬆ 대화 가져오기 (.json)",
    "exchange.note": "가져오기는 JSON 내보내기 파일의 대화를 더합니다. 이미 있는 대화를 덮어쓰지 않습니다.",
    "presets.title": "프리셋: 설정과 함께 저장한 시스템 프롬프트",
    "presets.pick": "프리셋", "presets.pick_info": "고르면 이 대화의 시스템 프롬프트와 설정이 그 값으로 바뀝니다.",
    "presets.name": "프리셋 이름", "presets.name_ph": "예: 한국어 선생님",
    "presets.save": "💾 지금 설정을 프리셋으로 저장", "presets.rename": "✎ 프리셋 이름 바꾸기",
    "presets.delete": "🗑 프리셋 삭제",
    "chat.chatbot": "대화", "chat.input_ph": "메시지 (Enter로 보내기, Shift+Enter로 줄바꿈). "
                                             "이미지를 첨부하면 이미지 모델이 답하고, 문서(.txt, .md, .pdf, "
                                             "코드)를 첨부하면 그 내용을 두고 답합니다.",
    "chat.drawer": "☰ 대화 목록", "chat.stop": "⏹ 중지", "chat.retry": "🔄 다시 생성", "chat.continue": "⏩ 계속 쓰기",
    "chat.edit": "✏️ 마지막 메시지 수정",
    "chat.edit_cancel": "✖ 수정 취소", "chat.settings": "이 대화의 설정",
    "chat.system_prompt": "시스템 프롬프트", "chat.system_prompt_ph": "예: 짧게 한국어로 답하세요.",
    "chat.temperature": "온도 (0 = 탐욕적)", "chat.max_new_tokens": "최대 새 토큰 수",
    "chat.top_p": "Top-p", "chat.empty_hint": "아래에 입력하세요. 대화는 이 컴퓨터에만 저장됩니다.",
    "chat.seed": "시드", "chat.seed_info": "비워 두면 매번 다른 답변, 숫자를 넣으면 같은 메시지에 같은 답변(다른 요청과 "
    "함께 처리되지 않을 때).",
    "chat.presence_penalty": "존재 페널티", "chat.frequency_penalty": "빈도 페널티",
    "chat.top_k": "Top-k", "chat.top_k_info": "가장 가능성 높은 k개 단어 중에서만 고릅니다. 0이면 꺼집니다.",
    "chat.repetition_penalty": "반복 페널티",
    "chat.repetition_penalty_info": "1보다 크면 대화에 이미 있는 내용을 덜 반복합니다. 1이면 꺼집니다.",
    "chat.penalty_info": "0보다 크면 같은 단어를 덜 반복합니다(존재: 한 번 쓰인 단어, 빈도: 많이 쓰일수록). 0이면 꺼집니다.",
    "chat.queue_note": "여러 사람이 동시에 쓰면 “바쁨, 다시 시도” 메시지가 나올 수 있습니다. 잠시 기다려 주세요.",
    "image.input": "이미지 (업로드, 붙여넣기, 웹캠)", "image.question": "이미지에 대한 질문",
    "image.question_ph": "이 사진에 무엇이 있나요?", "image.ask": "질문하기", "image.stop": "⏹ 중지",
    "image.answer": "답변", "image.to_chat": "➡ 채팅으로 보내기",
    "voice.input": "말하거나 오디오 업로드", "voice.transcribe": "받아쓰기",
    "voice.transcript": "받아쓴 내용 (수정 가능)", "voice.reply": "답하기",
    "voice.answer": "답변 글", "voice.spoken": "음성 답변", "voice.autoplay": "답변 자동 재생",
    "voice.https_note": "🎙 브라우저는 **https://** 또는 **localhost** 에서만 마이크를 허용합니다. 같은 "
                        "네트워크의 http:// 주소에서는 거부되니 공유 링크(https)를 쓰거나, 이 컴퓨터에서 "
                        "열거나, 녹음 파일을 업로드하세요.",
    "voice.language": "답변 음성의 언어",
    "models.loaded": "### 불러온 모델", "models.refresh": "↻ 새로 고침", "models.which": "모델",
    "models.load": "불러오기", "models.unload": "내리기", "models.precision": "채팅 모델 정밀도",
    "models.precision_save": "다음 시작 때 적용하도록 저장", "models.estimate_model": "추정할 모델 (허브 id 또는 폴더)",
    "models.estimate": "GPU 메모리 추정", "models.estimate_vision": "이미지 모델 추정",
    "models.extra_title": "### 메모리의 모델 (이미지·음성은 처음 쓸 때 불러옴)",
    "models.precision_title": "### 정밀도", "models.estimate_title": "### 정밀도별 GPU 메모리",
    "models.switch_title": "### 지금 채팅 모델 바꾸기",
    "models.switch_note": "쓰고 있는 답변은 먼저 끝납니다. 그 사이에 보낸 메시지에는 \"모델을 바꾸는 중…\"이라고 "
                          "알립니다(API는 503과 Retry-After로 답합니다). 새 모델을 불러오기 전에 이전 모델의 메모리를 "
                          "비우며, 새 모델을 불러오지 못하면 이전 모델이 다시 답합니다.",
    "models.switch_model": "모델: 로컬 폴더, .gguf 파일, 허브 id 또는 demo",
    "models.switch_precision": "정밀도 (auto: 사다리)", "models.switch": "이 모델 불러오기",
    "models.switch_log": "진행 상황",
    "system.title": "### 시스템 (2초마다 새로 고침)", "system.live": "실시간 갱신",
    "space.no_storage": "⚠️ **이 Space에는 영구 저장소가 없어 다시 시작하면 대화가 사라집니다.** "
                        "대화를 남기려면 Space 설정에서 영구 저장소(persistent storage)를 켜세요.",
    "locked.title": "## 🔒 이 Space는 아직 설정되지 않았습니다",
    "locked.intro": "Space 소유자가 아래 시크릿을 추가하거나 바로잡고(Settings → Variables and secrets → New secret) "
                    "Space를 다시 시작할 때까지 앱이 잠겨 있습니다:",
    "locked.help": "`APP_USERS`: 로그인 정보, `user:password,user2:password2`. `APP_API_KEY`: API용 긴 무작위 키 "
                   "(클라이언트는 `Authorization: Bearer <key>` 를 보냅니다).",
    "chat.message": "메시지", "chat.history_turns": "모델에 보낼 지난 대화 수",
    "chat.history_turns_info": "다음 답변에 넣을 내 메시지(각 답변 포함) 수, 지금 메시지 포함. 더 오래된 것은 빠집니다. "
                               "답변마다 몇 개를 보냈는지 표시됩니다.",
    "chat.adapter": "어댑터", "chat.adapter_info": "이 대화가 답할 때 쓰는 LoRA 어댑터 (튜닝 탭에서 만듦).",
    "chat.compare_title": "기본 모델과 어댑터 비교",
    "chat.compare_note": "마지막 메시지를 기본 모델과 고른 어댑터로 각각 생성합니다. 어댑터 차이만 보이도록 탐욕적 "
                         "생성(온도 0)을 씁니다. 저장되지 않습니다.",
    "chat.compare_run": "⚖️ 기본 모델 vs 어댑터 비교", "chat.compare_base": "기본 모델",
    "chat.compare_adapter": "어댑터 적용",
    "models.adapters_title": "### LoRA 어댑터", "models.adapters_refresh": "↻ 어댑터 새로 고침",
    "tuning.intro": "### LoRA / QLoRA 미세조정\n내 대화로 어댑터를 학습합니다 (JSONL, 한 줄에 "
                    "`{\"messages\": [...]}` 하나, 마지막은 어시스턴트 답변). 학습은 별도 프로세스에서 돌아서 "
                    "채팅은 계속 쓸 수 있습니다. 끝나면 채팅 → 설정 → 어댑터에서 고르세요.",
    "tuning.demo_note": "데모 모델이 올라와 있어 데모 설정(CPU)으로 학습합니다. 작은 오프라인 모델(SmolLM2-135M-Instruct)"
                        "에서는 손실이 내려가고 어댑터가 실제로 답을 바꿉니다. 작은 무작위 모델(테스트용)에서는 답변이 "
                        "여전히 의미 없는 글자입니다.",
    "tuning.remote_note": "⚠️ 채팅 모델이 원격 서버에서 돌고 있습니다. 여기서 학습한 어댑터는 모델을 이 컴퓨터에 "
                          "불러와야 쓸 수 있습니다.",
    "tuning.public_note": "로그인 없는 공개 공유에서는 학습을 할 수 없습니다.",
    "tuning.dataset": "데이터셋 (JSONL)", "tuning.sample_note": "업로드하지 않으면 예시 tuning/data/sample.jsonl "
                                                               "(짧은 한국어·영어 대화 36개)을 씁니다.",
    "tuning.check": "🔎 데이터셋 검사", "tuning.use_sample": "예시 데이터 쓰기",
    "tuning.check_result": "데이터셋 검사 결과", "tuning.method": "방법 (QLoRA: 4비트 기본 모델, GPU 메모리 절약)",
    "tuning.name": "어댑터 이름", "tuning.name_info": "글자(한글 포함), 숫자, '.', '_', '-'.",
    "tuning.steps": "학습 스텝 수", "tuning.overwrite": "같은 이름의 어댑터(또는 이전 실행)를 덮어쓰기",
    "tuning.start": "▶ 학습 시작", "tuning.cancel": "⏹ 학습 취소",
    "tuning.idle": "이 페이지에서 진행 중인 학습이 없습니다.", "tuning.plot": "손실",
    "tuning.axis_step": "스텝", "tuning.axis_loss": "손실",
    "tuning.log": "학습 로그",
    "voice.lang_auto": "자동 감지",
}

# Text made on the server: errors and live panels. {placeholders} are filled by `say`.
SAY_EN: dict[str, str] = {
    "empty": "The message is empty: type something first.",
    "too_few_values": "The {endpoint} endpoint takes {needed} values ({names}); this call sent {got}. "
                      "Send every value in order (gradio_client fills in the defaults).",
    "too_long": "The message has {n} characters; at most {limit} are accepted.",
    "no_session": "This chat no longer exists (deleted in another tab?). Pick or start another chat.",
    "stale": "This chat was changed in another tab or window. Reload the page and try again; nothing was overwritten.",
    "nothing_to_retry": "There is no message to answer yet: send one first.",
    "nothing_to_edit": "There is no message of yours to edit yet.",
    "nothing_to_continue": "Only a reply cut at the token limit can be continued, and the last reply of this "
                           "chat was not.",
    "prompt": "The model cannot take this conversation: {detail}.",
    "generation": "Generation failed: {detail}. The model is still loaded; try again.",
    "media": "That file cannot be used: {detail}.",
    "document_type": "{name} is not a document this chat reads: attach text, Markdown, PDF or source code files "
                     "(.txt, .md, .pdf, .py, .js, .json, .csv, ...).",
    "document_empty": "{name} is empty.",
    "document_too_large": "{name} is {mb} MB; at most {limit} MB is accepted.",
    "document_binary": "{name} is a binary file, not text: it cannot be attached as a document.",
    "document_encoding": "{name} is not text in UTF-8 or CP949/EUC-KR: save it as UTF-8 and attach it again.",
    "document_not_pdf": "{name} is not a readable PDF (damaged, or another kind of file named .pdf).",
    "document_encrypted": "{name} is password-protected: remove the password and attach it again.",
    "document_no_text": "{name} has no text to read (a scanned PDF holds only images).",
    "document_no_room": "The message and the reply length leave no room in the context for {name}: shorten the "
                        "message or lower Max new tokens.",
    "document_line": "📄 **{name}** · {tokens} tokens in the context",
    "document_pages": "{n} pages",
    "document_cut_pages": "Pages {first}–{last} were left out to fit the context.",
    "document_cut_page": "Page {page} was left out to fit the context.",
    "document_cut_chars": "The last {n} characters were left out to fit the context.",
    "speech": "Speech failed: {detail}.",
    "busy": "The model is busy with other people's requests: try again in {seconds} s.",
    "switching": "Switching model… The chat model is being replaced by {model}: send again in about {seconds} s.",
    "switch_failed": "Could not load {model}: {reason}. {serving} is still serving.",
    "switch_still_writing": "{model} was not loaded: {count} reply(s) were still being written after {seconds} s. "
                            "{serving} is still serving.",
    "switch_done": "Now serving {model} at {rung} (loaded in {seconds:.1f} s).",
    "unavailable": "The {what} model is not available / 모델을 사용할 수 없습니다: {detail}",
    "session_store": "Could not save the chat: {detail}",
    "need_image": "Add an image first (upload, paste or webcam).",
    "need_audio": "Record or upload audio first.",
    "no_speech": "No speech was heard in that recording; try again closer to the microphone.",
    # an audio file or a text to speak refused (engine values["sentence"]): the whole line in the page's language
    "audio_empty": "That file cannot be used: the audio file is empty.",
    "audio_too_big": "That file cannot be used: the audio is {mb:.1f} MB; at most {limit_mb:.0f} MB is accepted.",
    "audio_unreadable": "That file cannot be used: the audio file cannot be read.",
    "audio_not_audio": "That file cannot be used: it is not audio we can read (WAV, FLAC, OGG/Opus, MP3, AIFF, "
                       "WebM or MP4).",
    "audio_rate": "That file cannot be used: the audio claims a sample rate of {rate} Hz; expected {low} to "
                  "{high} Hz.",
    "audio_too_long": "That file cannot be used: the audio is {seconds:.0f} s long; at most {limit:.0f} s are "
                      "accepted.",
    "audio_over_limit": "That file cannot be used: the audio is longer than {limit:.0f} s, the most accepted.",
    "audio_damaged": "That file cannot be used: the audio is damaged (invalid samples).",
    "speech_no_text": "Speech failed: there is no text to speak.",
    "speech_too_long": "Speech failed: the text is {n} characters; at most {limit} can be spoken at once.",
    "speech_unpronounceable": "Speech failed: the voice found nothing it can pronounce in this text.",
    "speech_unloaded": "Speech failed: the speech model was unloaded; try again.",
    "speech_language": "Speech failed: the speech model does not know the language {language}; use ko, en or auto.",
    "speech_oom": "Speech failed: it ran out of memory (the model is still loaded); try something shorter, or "
                  "again when other models are idle.",
    "speech_voice_failed": "Speech failed: the voice could not speak this text.",
    "speech_voice_slow": "Speech failed: the voice took too long on this text; try a shorter one.",
    "speech_models": "Speech models here: hears with {stt}; speaks English with {tts_en} and Korean with {tts_ko}.",
    "speech_real": "real weights",
    "speech_random": "random weights: noise",
    "no_answer": "There is no answer to send yet: ask a question first.",
    "sent_to_chat": "Sent to the chat “{title}”.",
    "login": "Log in first.",
    "bad_owner": "owner_token must be 16 to 200 letters, digits, '-' or '_' (e.g. secrets.token_hex(16)).",
    "need_owner": "Sessions need an owner: log in, or pass owner_token.",
    "public_readonly": "Changing settings is turned off on a public share without login.",
    "settings_locked": "This server is reachable beyond this machine without a login, so its settings and "
                       "models cannot be changed here: configure a login (server.auth_file or APP_USERS).",
    "training_locked": "This server is reachable beyond this machine without a login, so training is turned off: "
                       "configure a login (server.auth_file or APP_USERS).",
    "bad_text": "The text holds a character that cannot be stored (U+{code}, a lone surrogate); remove it and try again.",
    "bad_number": "{name} must be a number from {low} to {high}.",
    "bad_integer": "{name} must be an integer from {low} to {high}.",
    "adapter_unknown": "There is no adapter “{name}” for the loaded model; the Models tab lists those there are.",
    "adapter_other_base": "The adapter “{name}” was made for {adapter_base}, but the loaded model is {base}.",
    "stopped": "stopped", "error": "error", "no_adapter": "no adapter", "turns_sent": "turns sent: {n}",
    "cut_at_limit": "cut at the token limit (Max new tokens in Settings)",
    "version_prev": "Previous version", "version_next": "Next version", "version_label": "version {n} of {m}",
    "version_question": "versions of your message above",
    "rung_batches": "answered together", "rung_takes_turns": "take turns (answers would change)",
    "transcript_edited": "You have edited the transcript: it was kept. Clear the box first to transcribe again.",
    "banner_model": "Model", "banner_more": "Why and how to change it", "banner_close": "Hide this notice",
    "banner_random": "⚠️ Demo model with random weights: replies are noise.",
    "banner_offline": "ℹ️ Small offline model (SmolLM2-135M), not the configured one: short, often wrong answers.",
    "working": "⏳ Working… (the first question loads the model, which can take a while)",
    "reply_running": "A reply is still being written: wait for it or press Stop (Esc), then send. "
                     "Your message is still in the box.",
    "deleted": "Chat deleted.", "renamed": "Renamed.", "precision_saved":
        "Saved: engine.precision = \"{precision}\" in {path}. It applies at the next start of the app "
        "(the chat model is not reloaded now).",
    "no_results": "No chat matches “{query}”.",
    "no_gpu": "No GPU: the models run on the CPU.",
    "last_reply": "Last reply: **{tps:.1f} tokens/s** ({tokens} tokens in {seconds:.1f} s, {model}).",
    "no_reply_yet": "No reply generated yet.",
    "unknown_model": "Could not read the configuration of {model}: {detail}. Offline, a hub id can only be "
                     "read if it is already in the local cache; use a local folder instead.",
    "base_model_choice": "(base model)", "adapter_missing": "not available",
    "adapter_choice": "{name} · {method} r={r} · {steps} steps",
    "compare_pick": "Choose an adapter first (Settings → Adapter) to compare it with the base model.",
    "compare_reply_running": "A reply is still being written: wait for it or press Stop (Esc), then compare.",
    "adapters_none": "No adapters yet: train one in the Tuning tab.",
    "adapters_remote": "The chat model runs on a remote server: LoRA adapters cannot be used with it.",
    "tab_random_image": "⚠️ Demo image model with random weights: its answers are noise, not descriptions. For the "
                        "real model, set engine.vision_model in config.json (a LLaVA-NeXT hub id or a local folder) "
                        "and start the app without --demo.",
    "tab_random_voice": "⚠️ Demo speech models with random weights: transcripts and spoken replies are noise, not "
                        "words. For real ones, set engine.stt_model_cpu (or engine.stt_model with a GPU), "
                        "engine.tts_model_ko and engine.tts_model_en in config.json and start the app without --demo.",
    "media_random": "The image and speech models here are tiny demo models with random weights: their output is "
                    "noise; configure real ones in config.json (engine.vision_model, engine.stt_model, ...).",
    "prompt_path": "Prompt format: {path}",
    # engine.max_concurrent as resolved (issue 14)
    "concurrency_auto": "Chats generated at once: **{slots}**, sized from memory (auto): {budget:.1f} GB for the KV "
                        "cache, {per_token:g} KiB per token, {context} tokens of context each",
    "concurrency_remote": "Chats sent at once: **{slots}** (auto; the remote server batches on its own)",
    "concurrency_fixed": "Chats generated at once: **{slots}** (engine.max_concurrent)",
    "quality_title": "**Quality per precision** (perplexity on a fixed English text, lower is better; "
                     "memory of the weights; measured by `make bench` on {model})",
    "quality_none": "No quality figures for this model yet: `make bench` measures them.",
    "ladder_auto": "Ladder (engine.precision auto): {ladder}, starting at the first rung that fits",
    "ladder_set": "Ladder (engine.precision): {ladder}; only these rungs are tried, in this order",
    # the Models tab's plain summary, speed column and estimate (ui/models.py, issues 23/24)
    "summary_model": "**Model:** {model}", "summary_demo": "Demo model",
    "summary_rung": "**Precision:** {words} · `{rung}`", "summary_device": "**Runs on:** {where}",
    "summary_memory": "**Memory:** {parts}", "memory_gpu": "{size} on the GPU", "memory_cpu": "{size} in CPU memory",
    "summary_people": "**Several people at once:** {line}",
    "summary_details": "Engine details: why this precision, the ladder, the load attempts",
    "plain_rung_fp16": "16-bit, full precision", "plain_rung_cpu": "full precision ({dtype})",
    "plain_rung_8bit": "8-bit, about half the memory of 16-bit",
    "plain_rung_4bit": "4-bit, about a quarter of the memory of 16-bit",
    "plain_rung_4bit-offload": "4-bit, with part of the model kept in CPU memory (slower)",
    "plain_rung_remote": "chosen by the remote server",
    "where_gpu": "the GPU ({device})", "where_cpu": "the CPU (no GPU in use: replies are slower)",
    "where_remote": "a remote server ({device})",
    "batch_together": "answered together in one batch, up to {slots} at a time",
    "batch_quantized": "{bits} answers change when several people ask at once, so requests take turns",
    "batch_unmeasured": "whether {bits} answers change when several people ask at once has not been measured, "
                        "so requests take turns",
    "batch_turns": "requests take turns, up to {slots} at a time, each on its own",
    "batch_remote": "the remote server answers them (up to {slots} sent at a time)",
    "batch_one": "one request at a time",
    "quality_speed": "{tps:.1f} tokens/s", "quality_not_measured": "not measured",
    "quality_speed_note": "Speed: greedy replies to one person at a time (plain generate, 32 new tokens) on the "
                          "machine that ran `make bench`; cpu-… rows ran on its CPU.",
    "estimate_head": "**{model}** · context {context} tokens · headroom {headroom}",
    "estimate_sizes": "Weights: {weights} · KV cache for one full context: {kv}",
    "estimate_card": "{gb} GB card", "estimate_this_gpu": "this GPU (free)", "estimate_card_col": "card",
    "estimate_loads_as": "loads as", "estimate_no_fit": "does not fit",
    "estimate_legend": "✅ = fits, ❌ = does not; number = GiB needed on the card (weights + KV cache + headroom). "
                       "4bit-offload keeps the rest in this machine's free CPU memory.",
    "estimate_shipped": "Architecture from the config file shipped with the app (no hub needed).",
    # engine.precision refused (config.PrecisionError): the same line as the config error, in each language
    **{f"precision_{problem}": line for problem, line in PRECISION_PROBLEMS.items()},
    "adapters_head": "| adapter | usable here | summary | created |",
    "adapters_yes": "✅ yes", "adapters_no": "❌ trained on another base",
    "tuning_check_head": "{name}: {good} good conversation(s), {bad} bad line(s).",
    "tuning_check_empty": "The file has no conversations.",
    "tuning_check_fix": "Fix these lines and upload the file again:",
    "tuning_state_starting": "Starting (loading the training libraries)", "tuning_state_loading": "Loading the base model",
    "tuning_state_training": "Training", "tuning_state_saving": "Saving the adapter", "tuning_state_done": "Saving the adapter",
    "tuning_state_succeeded": "Done", "tuning_state_failed": "Failed", "tuning_state_cancelled": "Cancelled",
    "tuning_step": "step {step} / {total} ({pct} %)",
    "tuning_state_tokenizing": "Tokenizing the examples", "tuning_examples": "{n} examples",
    "tuning_pace": "{s} s per step",
    "tuning_done": "Adapter `{name}` is ready: choose it in Chat → Settings → Adapter. The Models tab lists it.",
    "tuning_cancelled_note": "Stopped; no adapter was published.",
    "tuning_too_big": "The dataset is {size} MB; uploads may be at most {limit} MB (server.max_upload_mb).",
    "tuning_public": "Training is turned off on a public share without login.",
    "tuning_bad_steps": "Training steps must be a whole number from 1 to {max}.",
    "tuning_fix_first": "The dataset has bad lines (listed under Dataset check): fix them first; nothing was started.",
    "tuning_busy": "A training run is already going in this app (“{name}”, step {step} / {total}). Wait for it to "
                   "finish or cancel it from the page that started it.",
    "tuning_taken_hint": "tick “Replace an adapter (or earlier run) of this name”, or pick another name.",
    "tuning_nothing_to_cancel": "No training from this page is running.",
    # chat list rows (ui/chat_list.py)
    "row_rename": "Rename “{title}”", "row_delete": "Delete “{title}”",
    "delete_ask": "Delete **“{title}”**? This cannot be undone.",
    "switch_running": "A reply is still being written in this chat: press Stop (Esc) or wait for it, then switch.",
    "when_now": "just now", "when_min": "{n} min ago", "when_hours": "{n} h ago", "when_yesterday": "yesterday",
    "when_days": "{n} days ago", "when_date": "{mon} {day}", "when_date_year": "{mon} {day}, {year}",
    # export / import (ui/chat_exchange.py)
    "export_empty_chat": "This chat has no messages yet: there is nothing to export.",
    "export_no_chats": "You have no chats to export yet.",
    "import_done": "{n} chats imported.", "import_done_one": "1 chat imported.",
    "import_skipped": "{n} skipped: {reasons}",
    "import_skip_one": "chat {index}: {reason}",
    "import_why_not_object": "it is not a chat",
    "import_why_no_messages": "it has no list of messages",
    "import_why_too_many_messages": "it has {n} messages; the limit is {limit}",
    "import_why_invalid": "a message or setting in it is not valid",
    "import_why_storage": "it could not be saved on this disk",
    "import_nothing": "Pick a .json file to import.",
    "import_not_text": "This file is not text: pick a .json export of this app. Nothing was imported.",
    "import_too_large": "This file is larger than {limit_mb} MB, the most an import may be. Nothing was imported.",
    "import_not_json": "This file is not JSON: pick a .json export of this app (Markdown exports are for reading "
                       "only). Nothing was imported.",
    "import_foreign": "This file is not a chat export of this app. Nothing was imported.",
    "import_schema": "This export is from another version of the app (format {schema}; this one reads {ours}). "
                     "Nothing was imported.",
    "import_empty": "This file holds no chats. Nothing was imported.",
    # presets (ui/presets_panel.py)
    "preset_empty_name": "Give the preset a name first.",
    "preset_name_too_long": "A preset name may have at most {limit} characters; this one has {n}.",
    "preset_duplicate": "A preset named “{name}” already exists: pick another name.",
    "preset_too_many": "You already have {limit} presets, the most one can keep: delete one first.",
    "preset_not_found": "This preset no longer exists (deleted in another tab?).",
    "preset_bad_settings": "These settings cannot be kept as a preset: the system prompt is too long.",
    "preset_corrupt": "Your presets file could not be read; it was set aside and a new list was started.",
    "preset_pick_first": "Pick a preset first.",
    "preset_saved": "Preset “{name}” saved.", "preset_applied": "Preset “{name}” applied to this chat.",
    "preset_renamed": "Preset renamed to “{name}”.", "preset_deleted": "Preset “{name}” deleted.",
}

SAY_KO: dict[str, str] = {
    "empty": "메시지가 비어 있습니다. 먼저 내용을 입력하세요.",
    "too_few_values": "{endpoint} 엔드포인트는 값 {needed}개({names})를 받습니다. 이 호출은 {got}개를 보냈습니다. "
                      "모든 값을 순서대로 보내세요(gradio_client는 기본값을 채워 줍니다).",
    "too_long": "메시지가 {n}자입니다. 최대 {limit}자까지 받습니다.",
    "no_session": "이 대화가 더 이상 없습니다 (다른 탭에서 삭제?). 다른 대화를 고르거나 새로 시작하세요.",
    "stale": "이 대화가 다른 탭이나 창에서 바뀌었습니다. 페이지를 새로 고친 뒤 다시 해 보세요. 덮어쓴 내용은 없습니다.",
    "nothing_to_retry": "아직 답할 메시지가 없습니다. 먼저 메시지를 보내세요.",
    "nothing_to_edit": "아직 수정할 내 메시지가 없습니다.",
    "nothing_to_continue": "토큰 한도에서 잘린 답변만 계속 쓸 수 있는데, 이 대화의 마지막 답변은 잘리지 않았습니다.",
    "prompt": "모델이 이 대화를 받을 수 없습니다: {detail}.",
    "generation": "생성에 실패했습니다: {detail}. 모델은 그대로 있으니 다시 해 보세요.",
    "media": "이 파일은 쓸 수 없습니다: {detail}.",
    "document_type": "{name}은(는) 이 채팅이 읽는 문서가 아닙니다. 텍스트, 마크다운, PDF, 소스 코드 파일"
                     "(.txt, .md, .pdf, .py, .js, .json, .csv 등)을 첨부하세요.",
    "document_empty": "{name} 파일이 비어 있습니다.",
    "document_too_large": "{name}의 크기는 {mb} MB입니다. 최대 {limit} MB까지 받습니다.",
    "document_binary": "{name}은(는) 텍스트가 아닌 바이너리 파일이라 문서로 첨부할 수 없습니다.",
    "document_encoding": "{name}은(는) UTF-8이나 CP949/EUC-KR 텍스트가 아닙니다. UTF-8로 저장한 뒤 다시 첨부하세요.",
    "document_not_pdf": "{name}은(는) 읽을 수 있는 PDF가 아닙니다(손상되었거나 이름만 .pdf인 다른 파일).",
    "document_encrypted": "{name}은(는) 암호로 보호되어 있습니다. 암호를 해제한 뒤 다시 첨부하세요.",
    "document_no_text": "{name}에는 읽을 텍스트가 없습니다(스캔한 PDF는 이미지만 담고 있습니다).",
    "document_no_room": "메시지와 답변 길이 때문에 컨텍스트에 {name}을(를) 넣을 자리가 없습니다. 메시지를 줄이거나 "
                        "최대 새 토큰 수를 낮추세요.",
    "document_line": "📄 **{name}** · 컨텍스트에 들어간 토큰 {tokens}개",
    "document_pages": "{n}쪽",
    "document_cut_pages": "컨텍스트에 맞추느라 {first}–{last}쪽을 뺐습니다.",
    "document_cut_page": "컨텍스트에 맞추느라 {page}쪽을 뺐습니다.",
    "document_cut_chars": "컨텍스트에 맞추느라 마지막 {n}자를 뺐습니다.",
    "speech": "음성 처리에 실패했습니다: {detail}.",
    "busy": "다른 사람들의 요청으로 모델이 바쁩니다. {seconds}초 뒤에 다시 해 보세요.",
    "switching": "모델을 바꾸는 중… 채팅 모델을 {model}(으)로 바꾸고 있습니다. 약 {seconds}초 뒤에 다시 보내 주세요.",
    "switch_failed": "{model}을(를) 불러오지 못했습니다: {reason}. {serving} 모델이 계속 답합니다.",
    "switch_still_writing": "{model}을(를) 불러오지 않았습니다: {seconds}초가 지나도 답변 {count}개를 아직 쓰는 중이었습니다. "
                            "{serving} 모델이 계속 답합니다.",
    "switch_done": "이제 {model} 모델이 {rung}(으)로 답합니다 ({seconds:.1f}초 만에 불러옴).",
    "unavailable": "{what} 모델을 사용할 수 없습니다 / model not available: {detail}",
    "session_store": "대화를 저장하지 못했습니다: {detail}",
    "need_image": "먼저 이미지를 넣으세요 (업로드, 붙여넣기, 웹캠).",
    "need_audio": "먼저 녹음하거나 오디오를 업로드하세요.",
    "no_speech": "녹음에서 말소리가 들리지 않았습니다. 마이크에 가까이에서 다시 해 보세요.",
    "audio_empty": "이 파일은 쓸 수 없습니다: 오디오 파일이 비어 있습니다.",
    "audio_too_big": "이 파일은 쓸 수 없습니다: 오디오가 {mb:.1f} MB입니다. 최대 {limit_mb:.0f} MB까지 받습니다.",
    "audio_unreadable": "이 파일은 쓸 수 없습니다: 오디오 파일을 읽을 수 없습니다.",
    "audio_not_audio": "이 파일은 쓸 수 없습니다: 읽을 수 있는 오디오가 아닙니다 (WAV, FLAC, OGG/Opus, MP3, AIFF, "
                       "WebM, MP4 형식을 읽습니다).",
    "audio_rate": "이 파일은 쓸 수 없습니다: 오디오의 샘플링 레이트가 {rate} Hz로 적혀 있습니다. {low}~{high} Hz여야 "
                  "합니다.",
    "audio_too_long": "이 파일은 쓸 수 없습니다: 오디오 길이가 {seconds:.0f}초입니다. 최대 {limit:.0f}초까지 받습니다.",
    "audio_over_limit": "이 파일은 쓸 수 없습니다: 오디오가 최대 길이 {limit:.0f}초보다 깁니다.",
    "audio_damaged": "이 파일은 쓸 수 없습니다: 오디오 샘플이 잘못되어 있습니다 (파일 손상).",
    "speech_no_text": "음성 처리에 실패했습니다: 읽어 줄 글이 없습니다.",
    "speech_too_long": "음성 처리에 실패했습니다: 글이 {n}자입니다. 한 번에 최대 {limit}자까지 읽어 줍니다.",
    "speech_unpronounceable": "음성 처리에 실패했습니다: 이 글에는 음성이 발음할 수 있는 부분이 없습니다.",
    "speech_unloaded": "음성 처리에 실패했습니다: 음성 모델이 내려졌습니다. 다시 해 보세요.",
    "speech_language": "음성 처리에 실패했습니다: 음성 인식 모델이 {language} 언어를 모릅니다. ko, en, auto 중 하나를 "
                       "쓰세요.",
    "speech_oom": "음성 처리에 실패했습니다: 메모리가 부족했습니다 (모델은 그대로 있습니다). 더 짧게 하거나 다른 모델이 "
                  "쉴 때 다시 해 보세요.",
    "speech_voice_failed": "음성 처리에 실패했습니다: 음성이 이 글을 읽지 못했습니다.",
    "speech_voice_slow": "음성 처리에 실패했습니다: 이 글을 읽는 데 너무 오래 걸렸습니다. 더 짧은 글로 해 보세요.",
    "speech_models": "이 탭의 음성 모델: 받아쓰기 {stt}, 영어 말하기 {tts_en}, 한국어 말하기 {tts_ko}.",
    "speech_real": "실제 가중치",
    "speech_random": "무작위 가중치라 잡음",
    "no_answer": "아직 보낼 답변이 없습니다. 먼저 질문하세요.",
    "sent_to_chat": "대화 “{title}”(으)로 보냈습니다.",
    "login": "먼저 로그인하세요.",
    "bad_owner": "owner_token은 16~200자의 영문, 숫자, '-', '_' 이어야 합니다 (예: secrets.token_hex(16)).",
    "need_owner": "대화를 쓰려면 소유자가 필요합니다. 로그인하거나 owner_token을 넘기세요.",
    "public_readonly": "로그인 없는 공개 공유에서는 설정을 바꿀 수 없습니다.",
    "settings_locked": "이 서버는 로그인 없이 이 컴퓨터 밖에서 접속할 수 있어 설정과 모델을 바꿀 수 없습니다. "
                       "로그인을 설정하세요 (server.auth_file 또는 APP_USERS).",
    "training_locked": "이 서버는 로그인 없이 이 컴퓨터 밖에서 접속할 수 있어 학습을 할 수 없습니다. "
                       "로그인을 설정하세요 (server.auth_file 또는 APP_USERS).",
    "bad_text": "저장할 수 없는 문자(U+{code}, 짝이 없는 서로게이트)가 들어 있습니다. 지우고 다시 시도하세요.",
    "bad_number": "{name} 값은 {low}부터 {high}까지의 숫자여야 합니다.",
    "bad_integer": "{name} 값은 {low}부터 {high}까지의 정수여야 합니다.",
    "adapter_unknown": "지금 불러온 모델에 쓸 어댑터 “{name}”이(가) 없습니다. 모델 탭에서 있는 어댑터를 확인하세요.",
    "adapter_other_base": "어댑터 “{name}”은(는) {adapter_base}용인데, 지금 불러온 모델은 {base}입니다.",
    "stopped": "중지됨", "error": "오류", "no_adapter": "어댑터 없음", "turns_sent": "보낸 대화: {n}턴",
    "cut_at_limit": "토큰 한도에서 잘림 (설정의 최대 새 토큰 수)",
    "version_prev": "이전 버전", "version_next": "다음 버전", "version_label": "{m}개 중 {n}번째 버전",
    "version_question": "위 내 메시지의 버전",
    "rung_batches": "함께 답변", "rung_takes_turns": "차례대로 (함께 하면 답이 달라짐)",
    "transcript_edited": "받아쓴 내용을 고치셨기에 그대로 두었습니다. 다시 받아쓰려면 먼저 입력창을 비우세요.",
    "banner_model": "모델", "banner_more": "이유와 바꾸는 법", "banner_close": "이 알림 숨기기",
    "banner_random": "⚠️ 무작위 가중치의 데모 모델이라 답변은 의미 없는 글자입니다.",
    "banner_offline": "ℹ️ 설정한 모델이 아닌 작은 오프라인 모델(SmolLM2-135M)이라 답이 짧고 자주 틀립니다.",
    "working": "⏳ 처리 중… (첫 질문에는 모델을 불러오느라 시간이 걸릴 수 있습니다)",
    "reply_running": "아직 답변을 쓰는 중입니다. 기다리거나 중지(Esc)를 누른 뒤 보내세요. 메시지는 입력창에 그대로 있습니다.",
    "deleted": "대화를 삭제했습니다.", "renamed": "이름을 바꿨습니다.", "precision_saved":
        "저장했습니다: {path} 의 engine.precision = \"{precision}\". 앱을 다음에 시작할 때 적용됩니다 "
        "(지금 채팅 모델을 다시 불러오지는 않습니다).",
    "no_results": "“{query}” 와 맞는 대화가 없습니다.",
    "no_gpu": "GPU 없음: 모델이 CPU에서 돌아갑니다.",
    "last_reply": "마지막 답변: **초당 {tps:.1f} 토큰** ({seconds:.1f}초에 {tokens} 토큰, {model}).",
    "no_reply_yet": "아직 생성한 답변이 없습니다.",
    "unknown_model": "{model} 의 설정을 읽지 못했습니다: {detail}. 오프라인에서는 로컬 캐시에 있는 허브 id만 "
                     "읽을 수 있으니 로컬 폴더를 쓰세요.",
    "base_model_choice": "(기본 모델)", "adapter_missing": "사용 불가",
    "adapter_choice": "{name} · {method} r={r} · {steps} 스텝",
    "compare_pick": "먼저 어댑터를 고르세요 (설정 → 어댑터). 그래야 기본 모델과 비교할 수 있습니다.",
    "compare_reply_running": "아직 답변을 쓰는 중입니다. 기다리거나 중지(Esc)를 누른 뒤 비교하세요.",
    "adapters_none": "아직 어댑터가 없습니다. 튜닝 탭에서 학습하세요.",
    "adapters_remote": "채팅 모델이 원격 서버에서 돌고 있어 LoRA 어댑터를 쓸 수 없습니다.",
    "adapters_head": "| 어댑터 | 여기서 사용 | 요약 | 만든 때 |",
    "adapters_yes": "✅ 가능", "adapters_no": "❌ 다른 기본 모델로 학습됨",
    "tuning_check_head": "{name}: 정상 대화 {good}개, 문제 있는 줄 {bad}개.",
    "tuning_check_empty": "파일에 대화가 없습니다.",
    "tuning_check_fix": "아래 줄을 고친 뒤 파일을 다시 올리세요:",
    "tuning_state_starting": "시작 중 (학습 라이브러리 불러오는 중)", "tuning_state_loading": "기본 모델 불러오는 중",
    "tuning_state_training": "학습 중", "tuning_state_saving": "어댑터 저장 중", "tuning_state_done": "어댑터 저장 중",
    "tuning_state_succeeded": "완료", "tuning_state_failed": "실패", "tuning_state_cancelled": "취소됨",
    "tuning_step": "스텝 {step} / {total} ({pct} %)",
    "tuning_state_tokenizing": "예시 토큰화 중", "tuning_examples": "예시 {n}개",
    "tuning_pace": "스텝당 {s}초",
    "tuning_done": "어댑터 `{name}` 준비 완료: 채팅 → 설정 → 어댑터에서 고르세요. 모델 탭에도 보입니다.",
    "tuning_cancelled_note": "멈췄습니다. 어댑터는 만들어지지 않았습니다.",
    "tuning_too_big": "데이터셋이 {size} MB 입니다. 업로드는 최대 {limit} MB 까지입니다 (server.max_upload_mb).",
    "tuning_public": "로그인 없는 공개 공유에서는 학습을 할 수 없습니다.",
    "tuning_bad_steps": "학습 스텝 수는 1에서 {max} 사이의 정수여야 합니다.",
    "tuning_fix_first": "데이터셋에 문제 있는 줄이 있습니다 (데이터셋 검사 결과 참고). 먼저 고치세요. 학습은 시작하지 않았습니다.",
    "tuning_busy": "이 앱에서 이미 학습이 진행 중입니다 (“{name}”, 스텝 {step} / {total}). 끝날 때까지 기다리거나 "
                   "시작한 페이지에서 취소하세요.",
    "tuning_taken_hint": "“같은 이름의 어댑터(또는 이전 실행)를 덮어쓰기”를 켜거나 다른 이름을 쓰세요.",
    "tuning_nothing_to_cancel": "이 페이지에서 진행 중인 학습이 없습니다.",
    "row_rename": "“{title}” 이름 바꾸기", "row_delete": "“{title}” 삭제",
    "delete_ask": "**“{title}”** 대화를 삭제할까요? 되돌릴 수 없습니다.",
    "switch_running": "이 대화에서 아직 답변을 쓰는 중입니다. 중지(Esc)를 누르거나 끝날 때까지 기다린 뒤 바꾸세요.",
    "when_now": "방금", "when_min": "{n}분 전", "when_hours": "{n}시간 전", "when_yesterday": "어제",
    "when_days": "{n}일 전", "when_date": "{month}월 {day}일", "when_date_year": "{year}. {month}. {day}.",
    "export_empty_chat": "이 대화에는 아직 메시지가 없어 내보낼 것이 없습니다.",
    "export_no_chats": "아직 내보낼 대화가 없습니다.",
    "import_done": "대화 {n}개를 가져왔습니다.", "import_done_one": "대화 1개를 가져왔습니다.",
    "import_skipped": "{n}개는 건너뛰었습니다: {reasons}",
    "import_skip_one": "{index}번째 대화: {reason}",
    "import_why_not_object": "대화 형식이 아닙니다",
    "import_why_no_messages": "메시지 목록이 없습니다",
    "import_why_too_many_messages": "메시지가 {n}개로 한도 {limit}개를 넘습니다",
    "import_why_invalid": "올바르지 않은 메시지나 설정이 있습니다",
    "import_why_storage": "이 디스크에 저장하지 못했습니다",
    "import_nothing": "가져올 .json 파일을 고르세요.",
    "import_not_text": "텍스트 파일이 아닙니다. 이 앱에서 내보낸 .json 파일을 고르세요. 아무것도 가져오지 않았습니다.",
    "import_too_large": "파일이 가져오기 한도인 {limit_mb} MB보다 큽니다. 아무것도 가져오지 않았습니다.",
    "import_not_json": "JSON 파일이 아닙니다. 이 앱에서 내보낸 .json 파일을 고르세요 (Markdown 내보내기는 읽기용입니다). "
                       "아무것도 가져오지 않았습니다.",
    "import_foreign": "이 앱의 대화 내보내기 파일이 아닙니다. 아무것도 가져오지 않았습니다.",
    "import_schema": "다른 버전의 앱에서 내보낸 파일입니다 (형식 {schema}, 이 앱은 {ours}). 아무것도 가져오지 않았습니다.",
    "import_empty": "이 파일에는 대화가 없습니다. 아무것도 가져오지 않았습니다.",
    "preset_empty_name": "먼저 프리셋 이름을 입력하세요.",
    "preset_name_too_long": "프리셋 이름은 최대 {limit}자입니다. 입력한 이름은 {n}자입니다.",
    "preset_duplicate": "“{name}” 프리셋이 이미 있습니다. 다른 이름을 고르세요.",
    "preset_too_many": "프리셋은 최대 {limit}개까지 둘 수 있습니다. 먼저 하나를 삭제하세요.",
    "preset_not_found": "이 프리셋이 더 이상 없습니다 (다른 탭에서 삭제?).",
    "preset_bad_settings": "이 설정은 프리셋으로 저장할 수 없습니다: 시스템 프롬프트가 너무 깁니다.",
    "preset_corrupt": "프리셋 파일을 읽을 수 없어 따로 옮겨 두고 새 목록을 시작했습니다.",
    "preset_pick_first": "먼저 프리셋을 고르세요.",
    "preset_saved": "“{name}” 프리셋을 저장했습니다.", "preset_applied": "“{name}” 프리셋을 이 대화에 적용했습니다.",
    "preset_renamed": "프리셋 이름을 “{name}”(으)로 바꿨습니다.", "preset_deleted": "“{name}” 프리셋을 삭제했습니다.",
    "tab_random_image": "⚠️ 무작위 가중치의 데모 이미지 모델이라 답변은 그림 설명이 아닌 의미 없는 글자입니다. 실제 "
                        "모델을 쓰려면 config.json의 engine.vision_model에 LLaVA-NeXT 허브 id나 로컬 폴더를 넣고 "
                        "--demo 없이 앱을 시작하세요.",
    "tab_random_voice": "⚠️ 무작위 가중치의 데모 음성 모델이라 받아쓰기와 음성 답변은 말이 아닌 잡음입니다. 실제 모델을 "
                        "쓰려면 config.json의 engine.stt_model_cpu(GPU가 있으면 engine.stt_model), engine.tts_model_ko, "
                        "engine.tts_model_en을 설정하고 --demo 없이 앱을 시작하세요.",
    "media_random": "여기의 이미지·음성 모델은 무작위 가중치의 작은 데모 모델이라 결과가 의미 없습니다. "
                    "config.json(engine.vision_model, engine.stt_model 등)에서 실제 모델을 설정하세요.",
    "prompt_path": "프롬프트 형식: {path}",
    # engine.max_concurrent as resolved (issue 14)
    "concurrency_auto": "동시에 생성하는 대화: **{slots}**개, 메모리에 맞춰 자동 결정(auto): KV 캐시 {budget:.1f} GB, "
                        "토큰당 {per_token:g} KiB, 대화마다 문맥 {context} 토큰",
    "concurrency_remote": "동시에 보내는 대화: **{slots}**개 (auto; 원격 서버가 직접 배치 처리)",
    "concurrency_fixed": "동시에 생성하는 대화: **{slots}**개 (engine.max_concurrent 설정)",
    "quality_title": "**정밀도별 품질** (고정된 영어 글의 perplexity, 낮을수록 좋음; 가중치 메모리; "
                     "{model}에서 `make bench`로 측정)",
    "quality_none": "이 모델의 품질 수치가 아직 없습니다: `make bench`가 측정합니다.",
    "ladder_auto": "정밀도 사다리 (engine.precision auto): {ladder}, 메모리에 들어가는 첫 단계부터 시도",
    "ladder_set": "정밀도 사다리 (engine.precision): {ladder}; 이 단계들만 이 순서로 시도",
    "summary_model": "**모델:** {model}", "summary_demo": "데모 모델",
    "summary_rung": "**정밀도:** {words} · `{rung}`", "summary_device": "**실행 장치:** {where}",
    "summary_memory": "**메모리:** {parts}", "memory_gpu": "GPU {size}", "memory_cpu": "CPU 메모리 {size}",
    "summary_people": "**여러 사람이 동시에 물을 때:** {line}",
    "summary_details": "엔진 세부 정보: 이 정밀도를 고른 이유, 정밀도 사다리, 불러오기 시도",
    "plain_rung_fp16": "16비트, 원래 정밀도", "plain_rung_cpu": "원래 정밀도 ({dtype})",
    "plain_rung_8bit": "8비트, 16비트의 약 절반 메모리", "plain_rung_4bit": "4비트, 16비트의 약 4분의 1 메모리",
    "plain_rung_4bit-offload": "4비트, 모델 일부는 CPU 메모리에 둠 (더 느림)",
    "plain_rung_remote": "원격 서버가 정함",
    "where_gpu": "GPU ({device})", "where_cpu": "CPU (GPU를 쓰지 않아 답이 더 느림)",
    "where_remote": "원격 서버 ({device})",
    "batch_together": "한 배치로 함께 답함, 한 번에 최대 {slots}명",
    "batch_quantized": "{bits} 모델은 여러 사람이 동시에 물으면 답이 달라지므로 요청을 차례대로 처리함",
    "batch_unmeasured": "{bits} 모델이 여러 사람이 동시에 물을 때 답이 달라지는지 아직 측정하지 않아 요청을 차례대로 처리함",
    "batch_turns": "요청을 차례대로 처리함, 한 번에 최대 {slots}개를 각각 따로",
    "batch_remote": "원격 서버가 처리함 (한 번에 최대 {slots}개 전송)",
    "batch_one": "한 번에 요청 하나",
    "quality_speed": "초당 {tps:.1f} 토큰", "quality_not_measured": "측정 안 됨",
    "quality_speed_note": "속도: `make bench`를 실행한 컴퓨터에서 한 사람에게 그리디로 답할 때 (plain generate, 새 토큰 "
                          "32개); cpu-… 행은 그 컴퓨터의 CPU에서 측정.",
    "estimate_head": "**{model}** · 문맥 {context} 토큰 · 여유분 {headroom}",
    "estimate_sizes": "가중치: {weights} · 전체 문맥 하나의 KV 캐시: {kv}",
    "estimate_card": "{gb} GB 카드", "estimate_this_gpu": "이 GPU (남은 메모리)", "estimate_card_col": "카드",
    "estimate_loads_as": "불러오는 정밀도", "estimate_no_fit": "들어가지 않음",
    "estimate_legend": "✅ = 들어감, ❌ = 안 들어감; 숫자 = 카드에 필요한 GiB (가중치 + KV 캐시 + 여유분). "
                       "4bit-offload 는 나머지를 이 컴퓨터의 남은 CPU 메모리에 둡니다.",
    "estimate_shipped": "앱에 포함된 설정 파일에서 구조를 읽었습니다 (허브 불필요).",
    "precision_unknown": 'engine.precision: {shown} 은(는) 정밀도 단계가 아닙니다. "auto", 단계 하나, 또는 단계 '
                         "목록을 쓰세요: {rungs}",
    "precision_empty": 'engine.precision: [] 에 단계가 하나도 없습니다. "auto", 단계 하나, 또는 단계 목록을 쓰세요: '
                       "{rungs}",
    "precision_twice": "engine.precision: {shown} 이(가) 두 번 들어 있습니다. 단계마다 한 번씩만 쓰세요: {rungs}",
}

LANGS = ("en", "ko")


def make_i18n() -> gr.I18n:
    """One gr.I18n per app (given to mount_gradio_app); the browser's language picks the table."""
    return gr.I18n(en=dict(EN), ko=dict(KO))


def t(key: str) -> Any:
    """A translatable label: rendered in the browser's language by the frontend."""
    if key not in EN:
        raise KeyError(f"no UI text {key!r}")
    return I18nData(key)


def lang_of(request: Any) -> str:
    """'ko' when the browser (or client) prefers Korean, else 'en'."""
    headers = getattr(request, "headers", None) or {}
    try:
        accept = headers.get("accept-language", "") or ""
    except AttributeError:
        accept = ""
    first = accept.split(",")[0].strip().lower()
    return "ko" if first.startswith("ko") else "en"


def say(lang: str, key: str, **values: Any) -> str:
    table = SAY_KO if lang == "ko" else SAY_EN
    return table.get(key, SAY_EN[key]).format(**values)
