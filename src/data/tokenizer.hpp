// SentencePiece tokenizers for the text corpora (data.tokenizer = "bpe" or "unigram").
//
// A text is a sequence of lines (verses, sentences, paragraphs); each line is encoded on its own
// and followed by the end-of-line id (SentencePiece's eos piece "</s>"), so the token stream
// keeps the line structure and decoding can split on it. Ids: 0 = <unk>, 1 = </s>, then the
// learned pieces; no <s> or <pad>. SentencePiece normalises text (NFKC, runs of whitespace to
// one space, no leading/trailing space), so decode(encode(line)) is the normalised line.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace moe {

class Tokenizer {
 public:
  // Trains a model of `type` ("bpe" or "unigram") with at most `vocab_size` pieces on `lines`
  // and returns it serialized (the bytes of a SentencePiece .model file). A small text may
  // yield fewer pieces than asked for (ids stay < vocab_size either way). Throws UserError
  // naming model.vocab_size when SentencePiece rejects the request (e.g. too small a vocabulary
  // for the text's characters). Deterministic for a given input and thread count.
  static std::string train(const std::vector<std::string>& lines, const std::string& type,
                           int vocab_size);

  // From the bytes train() returned (or a .model file's contents).
  explicit Tokenizer(const std::string& serialized_model);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  int num_pieces() const;
  int end_of_line_id() const { return 1; }
  std::string piece(int id) const;

  // Appends the ids of `line`, then end_of_line_id().
  void encode_line(const std::string& line, std::vector<std::int32_t>& out) const;
  // The text of `ids` with one '\n' per end-of-line id.
  std::string decode(const std::vector<std::int32_t>& ids) const;

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
};

}  // namespace moe
