import json
from aligneai import AligneAI

def get_embeddings():
    # Initialise AligneAI client
    client = AligneAI()

    # Generate embeddings using AligneAI
    response = client.embeddings.create(
        inputs=["The new coffee blend from BeanWorks is robust and flavorful", 
                "Looking for a budget-friendly beach vacation spot in July with great food and snorkeling options."])

    # Log the response into your stdout
    print("Embeddings created sccessfully:\n\n", json.dumps(response))

if __name__ == "__main__":
    get_embeddings()
