// SentencePiece wrapper; see tokenizer.hpp.
#include "data/tokenizer.hpp"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <stdexcept>
#include <thread>
#include <unordered_map>

#include "config/config.hpp"

namespace moe {

namespace {

// Feeds the lines to the trainer without writing them to a file first.
class LineIterator : public sentencepiece::SentenceIterator {
 public:
  explicit LineIterator(const std::vector<std::string>& lines) : lines_(lines) {}
  bool done() const override { return i_ >= lines_.size(); }
  void Next() override { ++i_; }
  const std::string& value() const override { return lines_[i_]; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  const std::vector<std::string>& lines_;
  std::size_t i_ = 0;
};

}  // namespace

std::string Tokenizer::train(const std::vector<std::string>& lines, const std::string& type,
                             int vocab_size) {
  const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  const std::unordered_map<std::string, std::string> args = {
      {"model_type", type},
      {"vocab_size", std::to_string(vocab_size)},
      // A small text may not support vocab_size pieces: take what it supports.
      {"hard_vocab_limit", "false"},
      {"unk_id", "0"},
      {"eos_id", "1"},  // the end-of-line id
      {"bos_id", "-1"},
      {"pad_id", "-1"},
      // Use every line, in order, whatever its length (defaults sample and skip > 4192 bytes).
      {"input_sentence_size", "0"},
      {"shuffle_input_sentence", "false"},
      {"max_sentence_length", "1048576"},
      // Every character of the training text gets a piece, so it round-trips exactly (the
      // default 0.9995 maps the rarest characters, e.g. a rare capital, to <unk>).
      {"character_coverage", "1.0"},
      {"num_threads", std::to_string(threads)},
      {"minloglevel", "2"},  // no progress chatter on stderr
  };
  sentencepiece::SetRandomGeneratorSeed(20240520u);
  LineIterator it(lines);
  std::string model;
  const sentencepiece::util::Status status =
      sentencepiece::SentencePieceTrainer::Train(args, &it, &model);
  if (!status.ok())
    throw UserError("SentencePiece " + type + " training with model.vocab_size = " +
                    std::to_string(vocab_size) + " failed: " + status.message());
  return model;
}

Tokenizer::Tokenizer(const std::string& serialized_model)
    : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {
  const sentencepiece::util::Status status = sp_->LoadFromSerializedProto(serialized_model);
  if (!status.ok())
    throw std::runtime_error(std::string("cannot load SentencePiece model: ") + status.message());
  if (sp_->eos_id() != end_of_line_id())
    throw std::runtime_error("SentencePiece model has eos id " + std::to_string(sp_->eos_id()) +
                             ", expected " + std::to_string(end_of_line_id()));
}

Tokenizer::~Tokenizer() = default;

int Tokenizer::num_pieces() const {
  return sp_->GetPieceSize();
}

std::string Tokenizer::piece(int id) const {
  return sp_->IdToPiece(id);
}

void Tokenizer::encode_line(const std::string& line, std::vector<std::int32_t>& out) const {
  std::vector<int> ids;
  const sentencepiece::util::Status status = sp_->Encode(line, &ids);
  if (!status.ok())
    throw std::runtime_error(std::string("SentencePiece encoding failed: ") + status.message());
  out.insert(out.end(), ids.begin(), ids.end());
  out.push_back(end_of_line_id());
}

std::string Tokenizer::decode(const std::vector<std::int32_t>& ids) const {
  std::string text;
  std::vector<int> line;
  auto flush = [&] {
    std::string piece_text;
    const sentencepiece::util::Status status = sp_->Decode(line, &piece_text);
    if (!status.ok())
      throw std::runtime_error(std::string("SentencePiece decoding failed: ") + status.message());
    text += piece_text;
    line.clear();
  };
  for (std::int32_t id : ids) {
    if (id == end_of_line_id()) {
      flush();
      text += '\n';
    } else {
      line.push_back(id);
    }
  }
  if (!line.empty()) flush();
  return text;
}

}  // namespace moe
